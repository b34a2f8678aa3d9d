"""Does a real instruct model learn under federation? SmolLM2-135M-Instruct, FedAvg vs. FGRPO.

Both strategies start from the same model (the round-0 evaluation is shared: fgrpo caches it
by model and test sets), train the same clients on the same partitions for the same number of
local GRPO steps, and are scored on the same held-out prompts (``data.test_size`` per task)
at the start, every ``eval.every`` rounds and at the end. FGRPO runs with its default signal.
Each run is a real Flower simulation (``fgrpo.runtime.runner.run_experiment``, the path
``fgrpo run`` takes).

    .venv/bin/python benchmarks/real_model.py                    # configs/smollm2.toml, ~1 h on 2 cores
    .venv/bin/python benchmarks/real_model.py --set federation.rounds=1 --set data.test_size=10 --work runs/rm_smoke

Per GRPO step it reports the seconds a client spent and, of those, the seconds in
``model.generate`` (sampling the rollouts; the clients report both). The verdict compares the
final macro accuracy with the start: the rise in units of the standard error of the difference
(sqrt(se_start^2 + se_final^2), binomial per task; 3 is the bar for a learning signal).

Writes ``--json`` after every run (a killed benchmark keeps what finished), and ``--md`` and
``--png`` at the end. Running the same command again reuses finished runs of the same resolved
config, resumes a killed one from its checkpoint and starts any other over.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from statistics import fmean
from typing import Any

from bench_common import RESULTS, provenance

from fgrpo.core.config import Config
from fgrpo.core.errors import ConfigError
from fgrpo.runtime.checkpoint import checkpoint_header
from fgrpo.runtime.configs import load_config
from fgrpo.runtime.run_setup import clear
from fgrpo.runtime.runner import run_experiment
from fgrpo.runtime.sweep import same_config

STRATEGIES = {"fedavg": ["strategy.name=fedavg"], "fgrpo": ["strategy.name=fgrpo"]}
BAR = 3.0  # standard errors the macro accuracy must rise by


def run_once(cfg: Config, out: Path) -> str:
    """Run, resume or reuse the run in ``out``; says which."""
    same = same_config(cfg, out)
    if same and (out / "summary.json").is_file():
        return "reused"
    if same and checkpoint_header(out) is not None:
        run_experiment(cfg, out, resume=True)
        return "resumed"
    clear(out)
    run_experiment(cfg, out)
    return "ran"


def evaluations(out: Path) -> list[dict[str, Any]]:
    """Every evaluated round, round 0 (the shared start) included: per-task accuracy and se."""
    summary = json.loads((out / "summary.json").read_text())
    points = [{"round": 0, "accuracy": summary["initial_eval"], "se": summary["initial_eval_se"]}]
    for line in (out / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record.get("eval"):
            points.append(
                {"round": record["round"], "accuracy": record["eval"], "se": record["eval_se"]}
            )
    return points


def step_seconds(out: Path, local_steps: int) -> dict[str, float]:
    """Mean seconds per GRPO step of a client over the rounds, and the part spent generating
    (the rounds' ``train`` metrics: the clients' averages)."""
    rounds = [
        json.loads(line)["train"] for line in (out / "metrics.jsonl").read_text().splitlines()
    ]
    total = fmean(r["train-seconds"] for r in rounds) / local_steps
    generate = fmean(r.get("generate-seconds", 0.0) for r in rounds) / local_steps
    return {
        "per_step": round(total, 2),
        "generate": round(generate, 2),
        "rest": round(total - generate, 2),
        "generate_share": round(generate / total, 3) if total else 0.0,
    }


def rise(points: list[dict[str, Any]]) -> dict[str, float]:
    """Final macro minus start macro, its standard error and their ratio."""
    start, final = points[0], points[-1]
    delta = final["accuracy"]["macro"] - start["accuracy"]["macro"]
    se = math.sqrt(start["se"]["macro"] ** 2 + final["se"]["macro"] ** 2)
    return {
        "start": start["accuracy"]["macro"],
        "final": final["accuracy"]["macro"],
        "rise": round(delta, 4),
        "se_of_rise": round(se, 4),
        "rise_in_se": round(delta / se, 2) if se else 0.0,
    }


def verdict(runs: dict[str, dict[str, Any]]) -> str:
    best_name = max(runs, key=lambda n: runs[n]["rise"]["rise_in_se"])
    best = runs[best_name]["rise"]
    if best["rise_in_se"] >= BAR:
        return (
            f"PASS: {best_name} raised macro greedy accuracy from {best['start']:.3f} to {best['final']:.3f} "
            f"(+{best['rise']:.3f}, {best['rise_in_se']:.1f} standard errors; bar {BAR:.0f})."
        )
    missing = BAR * best["se_of_rise"] - best["rise"]
    return (
        f"MISS: the best strategy, {best_name}, moved macro greedy accuracy from {best['start']:.3f} to "
        f"{best['final']:.3f} ({best['rise']:+.3f}, {best['rise_in_se']:.1f} standard errors); the bar of "
        f"{BAR:.0f} standard errors needed {missing:.3f} more."
    )


def table(result: dict[str, Any]) -> list[str]:
    tasks = result["setting"]["tasks"]
    names = list(result["runs"])
    lines = [
        "| round | " + " | ".join(f"{n} {t}" for n in names for t in [*tasks, "macro"]) + " |",
        "|---|" + "---|" * (len(names) * (len(tasks) + 1)),
    ]
    rounds = sorted({p["round"] for r in result["runs"].values() for p in r["evaluations"]})
    for rnd in rounds:
        cells = []
        for name in names:
            point = next(
                (p for p in result["runs"][name]["evaluations"] if p["round"] == rnd), None
            )
            for t in [*tasks, "macro"]:
                cells.append(f"{point['accuracy'][t]:.3f} ± {point['se'][t]:.3f}" if point else "")
        lines.append(f"| {rnd} | " + " | ".join(cells) + " |")
    return lines


def markdown(result: dict[str, Any]) -> str:
    s = result["setting"]
    lines = [
        "# SmolLM2-135M-Instruct under federated GRPO: FedAvg vs. FGRPO",
        "",
        f"- command: `{result['command']}`",
        f"- machine: {result['machine']}",
        f"- date: {result['date']}",
        f"- setting: {s['config']}; {s['clients']} clients, {s['partition']} split of {', '.join(s['tasks'])}; "
        f"{s['rounds']} rounds x {s['local_steps']} local GRPO steps per client; {s['test_size']} held-out prompts "
        f"per task, greedy, {s['max_new_tokens']} new tokens; FGRPO signal {s['fgrpo_signal']}/{s['fgrpo_gain']}",
        f"- recipe: {json.dumps(s['recipe'])}",
        "",
        "## Greedy accuracy ± binomial standard error (round 0 is the shared start)",
        "",
        *table(result),
        "",
        "## Rise and time",
        "",
        "| strategy | start | final | rise | rise / se | s per GRPO step | of which generation | run seconds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, run in result["runs"].items():
        r, t = run["rise"], run["step_seconds"]
        lines.append(
            f"| {name} | {r['start']:.3f} | {r['final']:.3f} | {r['rise']:+.3f} | {r['rise_in_se']:.1f} | "
            f"{t['per_step']:.1f} | {t['generate']:.1f} ({100 * t['generate_share']:.0f}%) | {run['seconds']:.0f} |"
        )
    lines += ["", f"**{result.get('verdict', 'incomplete: not every run finished')}**", ""]
    if result.get("notes"):
        lines += ["## Notes", "", *[f"- {n}" for n in result["notes"]], ""]
    return "\n".join(lines)


def plot(result: dict[str, Any], path: Path) -> None:
    from fgrpo.runtime.reports import plt, save_figure

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, run in result["runs"].items():
        points = run["evaluations"]
        ax.errorbar(
            [p["round"] for p in points],
            [p["accuracy"]["macro"] for p in points],
            yerr=[p["se"]["macro"] for p in points],
            marker="o",
            capsize=3,
            label=name,
        )
    ax.set_xlabel("round")
    ax.set_ylabel("macro greedy accuracy (held-out)")
    ax.set_title("SmolLM2-135M-Instruct, federated GRPO")
    ax.legend()
    save_figure(fig, path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="configs/smollm2.toml")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument(
        "--strategies", default=",".join(STRATEGIES), help="comma-separated, run in this order"
    )
    parser.add_argument("--work", default="runs/real_model", help="run directories go here")
    parser.add_argument(
        "--name", default="real_model", help="result file stem under benchmarks/results/"
    )
    parser.add_argument(
        "--note", action="append", default=[], help="a line for the result's notes (what was tried)"
    )
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.strategies.split(",") if n.strip()]
    try:
        unknown = [n for n in names if n not in STRATEGIES]
        if unknown:
            raise ConfigError(
                "--strategies", f"unknown {', '.join(unknown)}; known: {', '.join(STRATEGIES)}"
            )
        configs = {n: load_config(args.config, [*args.overrides, *STRATEGIES[n]]) for n in names}
    except ConfigError as err:
        print(f"real_model: {err}", file=sys.stderr)
        return 2
    cfg = configs[names[0]]
    settings = cfg.grpo_settings()
    result: dict[str, Any] = {
        **provenance("real_model.py", argv if argv is not None else sys.argv[1:]),
        "setting": {
            "config": args.config,
            "model": cfg.model.name,
            "clients": cfg.federation.num_clients,
            "partition": cfg.data.partition,
            "tasks": cfg.data.tasks,
            "rounds": cfg.federation.rounds,
            "local_steps": cfg.federation.local_steps,
            "test_size": cfg.data.test_size,
            "max_new_tokens": cfg.eval.max_new_tokens,
            "eval_every": cfg.eval.every,
            "fgrpo_signal": configs.get("fgrpo", cfg).strategy.signal,
            "fgrpo_gain": configs.get("fgrpo", cfg).strategy.gain,
            "recipe": {
                k: settings[k]
                for k in (
                    "learning_rate",
                    "per_device_train_batch_size",
                    "num_generations",
                    "max_completion_length",
                    "temperature",
                )
            },
        },
        "bar_in_se": BAR,
        "notes": args.note,
        "runs": {},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    json_path = RESULTS / f"{args.name}.json"
    for name in names:
        out = Path(args.work) / name
        how = run_once(configs[name], out)
        points = evaluations(out)
        result["runs"][
            name
        ] = {  # seconds: the run's own (summary.json), whether it ran now or earlier
            "run_dir": str(out),
            "how": how,
            "seconds": json.loads((out / "summary.json").read_text())["seconds"],
            "evaluations": points,
            "rise": rise(points),
            "step_seconds": step_seconds(out, configs[name].federation.local_steps),
        }
        print(f"{name}: {how}; {json.dumps(result['runs'][name]['rise'])}", flush=True)
        json_path.write_text(json.dumps(result, indent=2) + "\n")  # incrementally: a long benchmark
    result["verdict"] = verdict(result["runs"])
    json_path.write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / f"{args.name}.md").write_text(markdown(result))
    plot(result, RESULTS / f"{args.name}.png")
    print(result["verdict"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
