"""Does GRPO learn far above the evaluation noise on the laptop testbed, and does FedAvg keep it?

Side by side in one invocation, from the shipped tiny reasoner on the five default tasks, with the
same total number of local GRPO steps and the same learning-rate shape:

- ``centralized``: one trainer on the pooled data of all clients;
- ``fedavg-iid``: FedAvg, 4 clients, IID partition;
- ``fedavg-dirichlet-0.1``: FedAvg, 4 clients, Dirichlet(0.1) over the task label.

Each run is a real ``fgrpo run`` (subprocess) of ``configs/learning_signal.toml``. Prints start /
best / final macro accuracy ± se and the fraction of the centralized gain each federated run keeps;
writes
``benchmarks/results/learning_signal.{json,md,png}`` (the JSON after every run, so a stopped
benchmark keeps what it measured).

    .venv/bin/python benchmarks/learning_signal.py            # about 25 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench_common import RESULTS, ROOT, provenance, run_fgrpo

from fgrpo.runtime.reports import plt, save_figure

CONFIG = ROOT / "configs" / "learning_signal.toml"
RUNS = {
    "centralized": ["strategy.name=centralized"],
    "fedavg-iid": ["strategy.name=fedavg", "data.partition=iid"],
    "fedavg-dirichlet-0.1": ["strategy.name=fedavg", "data.partition=dirichlet", "data.alpha=0.1"],
}
TARGETS = {
    "centralized_gain": 0.15,
    "centralized_seconds": 900,
    "collapse": 0.03,
    "fedavg_iid_kept": 2 / 3,
}


def verdict(runs: dict[str, dict]) -> dict:
    """The targets, each with the measured value and whether it holds."""
    out: dict = {}
    central = runs.get("centralized")
    if central:
        gain = central["best"] - central["start"]
        out["centralized_gain"] = {
            "value": round(gain, 4),
            "target": ">= 0.15",
            "met": gain >= TARGETS["centralized_gain"],
        }
        out["centralized_seconds"] = {
            "value": central["seconds"],
            "target": "<= 900",
            "met": central["seconds"] <= 900,
        }
        drop = central["best"] - central["final"]
        out["centralized_no_collapse"] = {
            "value": round(drop, 4),
            "target": "best - final <= 0.03",
            "met": drop <= 0.03,
        }
        for name, run in runs.items():
            if name != "centralized":
                run["kept_of_centralized_gain"] = (
                    round((run["final"] - run["start"]) / gain, 3) if gain > 0 else None
                )
        iid = runs.get("fedavg-iid")
        if iid and iid.get("kept_of_centralized_gain") is not None:
            kept = iid["kept_of_centralized_gain"]
            out["fedavg_iid_kept"] = {
                "value": kept,
                "target": ">= 0.667",
                "met": kept >= TARGETS["fedavg_iid_kept"],
            }
    return out


def markdown(result: dict) -> str:
    lines = [
        "# Learning signal on the laptop testbed",
        "",
        f"- command: `{result['command']}`",
        f"- machine: {result['machine']}",
        f"- date: {result['date']}",
        f"- config: `configs/learning_signal.toml` {result['extra'] or ''}",
        "",
        "| run | start | best (round) | final ± se | kept of centralized gain | seconds |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, r in result["runs"].items():
        kept = r.get("kept_of_centralized_gain")
        lines.append(
            f"| {name} | {r['start']:.3f} | {r['best']:.3f} ({r['best_round']}) | {r['final']:.3f} ± {r['se']:.3f} "
            f"| {'' if kept is None else f'{kept:.2f}'} | {r['seconds']:.0f} |"
        )
    lines += ["", "| target | measured | wanted | met |", "| --- | --- | --- | --- |"]
    lines += [
        f"| {k} | {v['value']} | {v['target']} | {'yes' if v['met'] else '**no**'} |"
        for k, v in result["targets"].items()
    ]
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for name, r in result["runs"].items():
        xs = [p["round"] for p in r["curve"]]
        ys = [p["macro"] for p in r["curve"]]
        se = [p["se"] for p in r["curve"]]
        ax.plot(xs, ys, marker="o", label=name)
        ax.fill_between(
            xs,
            [y - e for y, e in zip(ys, se, strict=False)],
            [y + e for y, e in zip(ys, se, strict=False)],
            alpha=0.15,
        )
    ax.set(
        xlabel="round (centralized: round-equivalent of the same steps)",
        ylabel="macro greedy accuracy (± se)",
        title="Learning signal: same total GRPO steps",
    )
    ax.legend()
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--work", default="runs/learning_signal", help="where the run directories go"
    )
    parser.add_argument(
        "--only", action="append", choices=list(RUNS), help="run just these (repeatable)"
    )
    parser.add_argument(
        "--set",
        dest="extra",
        action="append",
        default=[],
        help="extra config override for every run",
    )
    parser.add_argument(
        "--out", default=str(RESULTS / "learning_signal"), help="results path without extension"
    )
    args = parser.parse_args(argv)
    result = {
        "runs": {},
        "targets": {},
        "extra": " ".join(f"--set {e}" for e in args.extra),
        **provenance("learning_signal.py", argv),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for name in args.only or list(RUNS):
        result["runs"][name] = run_fgrpo(
            CONFIG, Path(args.work).resolve() / name, RUNS[name] + args.extra
        )
        result["targets"] = verdict(result["runs"])
        out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
        r = result["runs"][name]
        print(
            f"{name}: start {r['start']:.3f} best {r['best']:.3f} final {r['final']:.3f} ± {r['se']:.3f} "
            f"in {r['seconds']:.0f}s",
            flush=True,
        )
    out.with_suffix(".md").write_text(markdown(result))
    plot(result, out.with_suffix(".png"))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
