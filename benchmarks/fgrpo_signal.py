"""Does FGRPO's gain measure learning? Null and stalled-client tests for each signal x gain mode.

Real Flower simulations (``fgrpo.experiments.runner.run_experiment``, the path ``fgrpo run``
takes) of the shipped model, Dirichlet(alpha) task mixtures:

- null test: every client's learning rate 0, so nothing learns; the total-variation distance
  between FGRPO's weights and FedAvg's (n_k / sum n) per round, median and max. A gain that
  measures learning keeps it near 0.
- stalled-client test: client 0's learning rate 0 (``federation.client_lr_scale``), the others
  learn; the stalled client's mean weight from round 3 on as a fraction of its FedAvg weight, and
  the final macro accuracy of FGRPO vs. a FedAvg run of the same setting.

    .venv/bin/python benchmarks/fgrpo_signal.py            # every mode, 10 rounds (CPU hours)
    .venv/bin/python benchmarks/fgrpo_signal.py --rounds 2 --modes train-reward/range --set model.name=tiny-random

Writes ``--json`` (schema in issue 10) and ``--md`` (a table, the command, machine and date).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import sys
from pathlib import Path
from statistics import fmean, median
from typing import Any

from fgrpo.config import Config, ConfigError, load_config
from fgrpo.experiments.runner import run_experiment

MODES = ["train-reward/range", "train-reward/ratio", "train-reward/zscore", "train-reward/difference",
         "probe/range", "probe/ratio", "probe/zscore", "probe/difference", "probe/delta"]
STALLED = 0  # partition id of the stalled client
FROM_ROUND = 3  # the stalled client's weight is averaged from this round on (baselines have settled)
# Done-when thresholds of issue 10
NULL_TV_MEDIAN, NULL_TV_MAX, STALLED_RATIO = 0.05, 0.15, 0.5


def rounds_of(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def tv_from_fedavg(clients: list[dict[str, Any]]) -> float:
    """Total-variation distance between the weights used and FedAvg's n_k / sum n."""
    total = sum(c["num-examples"] for c in clients)
    return 0.5 * sum(abs(c["weight"] - c["num-examples"] / total) for c in clients)


def stalled_weight_ratio(records: list[dict[str, Any]], client_id: str) -> float:
    ratios = []
    for record in records[FROM_ROUND - 1:]:
        clients = record["clients"]
        total = sum(c["num-examples"] for c in clients)
        ratios += [c["weight"] / (c["num-examples"] / total) for c in clients if c["client-id"] == client_id]
    return fmean(ratios) if ratios else math.nan


class Setting:
    """The base config file and overrides every run of the benchmark shares."""

    def __init__(self, path: str, overrides: list[str]) -> None:
        self.path, self.overrides = path, overrides
        self.cfg = load_config(path, overrides)  # validated once, before any run starts

    def run(self, overrides: list[str], out_dir: Path) -> list[dict[str, Any]]:
        run_experiment(load_config(self.path, [*self.overrides, *overrides]), out_dir)
        return rounds_of(out_dir)


def final_eval(records: list[dict[str, Any]]) -> tuple[float, float]:
    """(macro accuracy, its binomial standard error) of the last evaluated round."""
    last = next(r for r in reversed(records) if "eval" in r)
    return last["eval"]["macro"], last["eval_se"]["macro"]


def stalled_overrides(cfg: Config) -> list[str]:
    """Client STALLED does not learn; evaluate the final round only."""
    return [f'federation.client_lr_scale={{"{STALLED}" = 0.0}}', f"eval.every={cfg.federation.rounds}"]


def measure_mode(setting: Setting, mode: str, work: Path, fedavg: tuple[float, float]) -> dict[str, Any]:
    signal, gain = mode.split("/")
    base = setting.cfg
    fgrpo = ["strategy.name=fgrpo", f"strategy.signal={signal}", f"strategy.gain={gain}"]
    null = setting.run([*fgrpo, "grpo.learning_rate=0.0", "eval.every=0"], work / mode.replace("/", "-") / "null")
    tvs = [tv_from_fedavg(r["clients"]) for r in null]
    stalled = setting.run([*fgrpo, *stalled_overrides(base)], work / mode.replace("/", "-") / "stalled")
    acc, se = final_eval(stalled)
    return {
        "null_tv_median": median(tvs),
        "null_tv_max": max(tvs),
        "null_tv_per_round": tvs,
        "stalled_weight_ratio": stalled_weight_ratio(stalled, f"client-{STALLED}"),
        "acc_fgrpo": acc,
        "acc_fedavg": fedavg[0],
        "se": se,
        "se_fedavg": fedavg[1],
    }


def passes(m: dict[str, Any]) -> bool:
    return m["null_tv_median"] <= NULL_TV_MEDIAN and m["null_tv_max"] <= NULL_TV_MAX and m["stalled_weight_ratio"] <= STALLED_RATIO


def favoured(modes: dict[str, dict[str, Any]]) -> str:
    """Among modes meeting every threshold, the best stalled-setting accuracy; else the smallest null TV."""
    passing = [name for name, m in modes.items() if passes(m)]
    if passing:
        return max(passing, key=lambda name: modes[name]["acc_fgrpo"])
    return min(modes, key=lambda name: (modes[name]["null_tv_median"], modes[name]["stalled_weight_ratio"]))


def verdict(m: dict[str, Any]) -> str:
    gap = m["acc_fgrpo"] - m["acc_fedavg"]
    noise = 2 * math.hypot(m["se"], m["se_fedavg"])
    if gap > noise:
        return "FGRPO beats FedAvg"
    return "FGRPO does not beat FedAvg" + (" (worse)" if gap < -noise else " (within 2 se)")


def table(result: dict[str, Any]) -> str:
    lines = ["| signal/gain | null TV median | null TV max | stalled weight / FedAvg | acc FGRPO | acc FedAvg | verdict | meets thresholds |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, m in result["modes"].items():
        lines.append(f"| {name} | {m['null_tv_median']:.3f} | {m['null_tv_max']:.3f} | {m['stalled_weight_ratio']:.2f} | "
                     f"{m['acc_fgrpo']:.3f} ± {m['se']:.3f} | {m['acc_fedavg']:.3f} ± {m['se_fedavg']:.3f} | "
                     f"{m['verdict']} | {'yes' if m['meets_thresholds'] else 'no'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="configs/demo.toml", help="base setting (model, GRPO recipe)")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated signal/gain pairs")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--alpha", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--work", default="runs/fgrpo_signal", help="run directories go here")
    parser.add_argument("--json", default="benchmarks/results/fgrpo_signal.json")
    parser.add_argument("--md", default="benchmarks/results/fgrpo_signal.md")
    args = parser.parse_args(argv)

    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in modes if m not in MODES]
    try:
        if unknown:
            raise ConfigError("--modes", f"unknown {', '.join(unknown)}; known: {', '.join(MODES)}")
        setting = Setting(args.config, [f"federation.rounds={args.rounds}", f"federation.num_clients={args.clients}",
                                        "data.partition=dirichlet", f"data.alpha={args.alpha}", f"seed={args.seed}",
                                        "federation.fraction_train=1.0", *args.overrides])
    except ConfigError as err:
        print(f"fgrpo_signal: {err}", file=sys.stderr)
        return 2
    base, work = setting.cfg, Path(args.work)
    fedavg = final_eval(setting.run(["strategy.name=fedavg", *stalled_overrides(base)], work / "fedavg-stalled"))
    measured = {}
    for mode in modes:
        m = measure_mode(setting, mode, work, fedavg)
        m["verdict"], m["meets_thresholds"] = verdict(m), passes(m)
        measured[mode] = m
        print(f"{mode}: {json.dumps({k: v for k, v in m.items() if k != 'null_tv_per_round'})}", flush=True)

    command = "python benchmarks/fgrpo_signal.py " + " ".join(argv if argv is not None else sys.argv[1:])
    result = {
        "modes": measured,
        "default": favoured(measured),
        "config_default": f"{base.strategy.signal}/{base.strategy.gain}",
        "thresholds": {"null_tv_median": NULL_TV_MEDIAN, "null_tv_max": NULL_TV_MAX, "stalled_weight_ratio": STALLED_RATIO},
        "setting": {"config": args.config, "model": base.model.name, "rounds": args.rounds, "clients": args.clients,
                    "alpha": args.alpha, "seed": args.seed, "local_steps": base.federation.local_steps,
                    "test_size": base.data.test_size, "stalled_client": f"client-{STALLED}", "from_round": FROM_ROUND},
        "command": command.strip(),
        "machine": f"{platform.machine()} {platform.system()}, {os.cpu_count()} CPU(s), no GPU",
        "date": datetime.date.today().isoformat(),
    }
    best = measured[result["default"]]
    summary = (f"Favoured mode: {result['default']} ({'meets' if best['meets_thresholds'] else 'does NOT meet'} the "
               f"thresholds null TV median <= {NULL_TV_MEDIAN}, max <= {NULL_TV_MAX}, stalled ratio <= {STALLED_RATIO}); "
               f"stalled setting: {best['verdict']}.")
    result["summary"] = summary
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    md = ["# FGRPO signal x gain: null and stalled-client tests", "", f"- command: `{result['command']}`",
          f"- machine: {result['machine']}", f"- date: {result['date']}",
          f"- setting: {json.dumps(result['setting'])}", "", table(result), "", summary, ""]
    Path(args.md).write_text("\n".join(md))
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
