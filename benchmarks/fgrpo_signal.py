"""Does FGRPO's gain measure learning? Null and stalled-client tests for each signal x gain mode.

Real Flower simulations (``fgrpo.runtime.runner.run_experiment``, the path ``fgrpo run``
takes) of the shipped model, Dirichlet(alpha) task mixtures:

- null test: every client's learning rate 0, so nothing learns; the total-variation distance
  between FGRPO's weights and FedAvg's (n_k / sum n) per round, median and max. A gain that
  measures learning keeps it near 0. With learning rate 0 every update is zero, so the global
  model, and with it every client's signal, does not depend on the weights: one null run per
  signal (``train-reward``; ``probe`` with the received-model probe too) records the per-task
  signals, and every gain mode's weights are recomputed from them by the production rule
  (``fgrpo_rule``) at each temperature of ``--taus``. The replay of the run's own mode is
  checked against the weights the server logged.
- IID null: every client learns, on the same task mix (``data.partition=iid``), aggregated with
  FedAvg's weights (FGRPO at tau = 1e6, so the signals are logged but do not steer). The clients
  are exchangeable, so any departure of the replayed weights from FedAvg's is noise of the signal
  under real training. Probe signals need it: with learning rate 0 a probe is constant, so the
  learning-rate-0 null passes them at every tau.
- temperature: per mode, the smallest tau of the grid whose TV meets the thresholds in both null
  tests (weights as sharp as noise allows), decided by the null runs alone.
- stalled-client test at that tau: client 0's learning rate 0 (``federation.client_lr_scale``),
  the others learn; the stalled client's mean weight from round 3 on as a fraction of its FedAvg
  weight, the effective number of clients 1 / sum w^2, and the final macro accuracy of FGRPO vs.
  a FedAvg run of the same setting.
- one-row factor: on the stalled run, the most one probe row (moved up or down) changes any weight,
  by replay; a mode above 2x is left out of the favoured choice (the bound the default gain must keep).
- favoured mode (``favoured``): modes whose weights collapse onto one client are left out (see
  ``collapsed``), then the null and stalled-client thresholds decide.

    .venv/bin/python benchmarks/fgrpo_signal.py            # every mode, 10 rounds (about an hour)
    .venv/bin/python benchmarks/fgrpo_signal.py --rounds 2 --modes train-reward/range --set
    model.name=tiny-random

Writes ``--json`` (one entry per mode) after every run and ``--md`` (a table, the command,
machine and date) at the end.
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
from typing import Any

from fgrpo.analysis.weights import (
    FROM_ROUND,
    NULL_TV_MAX,
    NULL_TV_MEDIAN,
    ROW_FACTOR,
    STALLED_RATIO,
    calibrated_tau,
    check_replay,
    collapsed,
    effective_clients,
    favoured,
    final_eval,
    gains_per_round,
    null_by_tau,
    one_row_factor,
    passes,
    rounds_of,
    stalled_weight_ratio,
    unbounded,
    verdict,
    without_rounds,
)
from fgrpo.core.config import Config
from fgrpo.core.errors import ConfigError
from fgrpo.runtime.configs import load_config
from fgrpo.runtime.run_setup import clear
from fgrpo.runtime.runner import run_experiment
from fgrpo.runtime.sweep import same_config

MODES = [
    "train-reward/range",
    "train-reward/ratio",
    "train-reward/zscore",
    "train-reward/difference",
    "probe/range",
    "probe/ratio",
    "probe/zscore",
    "probe/difference",
    "probe/delta",
    "probe-sampled/range",
    "probe-sampled/delta",
]
STALLED = 0  # partition id of the stalled client
TAUS = "3,1,0.3,0.1,0.03,0.01"
FEDAVG_TAU = 1e6  # FGRPO at this temperature gives n_k / sum n: signals logged, weights FedAvg's


class Setting:
    """The base config file and overrides every run of the benchmark shares."""

    def __init__(self, path: str, overrides: list[str], probe_samples: int) -> None:
        self.path, self.overrides, self.probe_samples = path, overrides, probe_samples
        self.cfg = load_config(path, overrides)  # validated once, before any run starts

    def signal(self, signal: str, gain: str, tau: float) -> list[str]:
        """FGRPO overrides for a benchmark signal: ``probe-sampled`` is ``probe`` with sampled
        answers."""
        kind = (
            ["strategy.signal=probe", f"strategy.probe_samples={self.probe_samples}"]
            if signal == "probe-sampled"
            else [f"strategy.signal={signal}"]
        )
        return ["strategy.name=fgrpo", *kind, f"strategy.gain={gain}", f"strategy.tau={tau}"]

    def run(self, overrides: list[str], out_dir: Path) -> list[dict[str, Any]]:
        """Run once; a finished run of the same resolved config (an earlier, interrupted
        invocation) is read back instead of repeated."""
        cfg = load_config(self.path, [*self.overrides, *overrides])
        finished = bool(same_config(cfg, out_dir)) and (out_dir / "summary.json").is_file()
        if not finished:
            clear(out_dir)
            run_experiment(cfg, out_dir)
        return rounds_of(out_dir)


def stalled_overrides(cfg: Config) -> list[str]:
    """Client STALLED does not learn; evaluate the final round only."""
    return [
        f'federation.client_lr_scale={{"{STALLED}" = 0.0}}',
        f"eval.every={cfg.federation.rounds}",
    ]


def null_run(setting: Setting, signal: str, work: Path, iid: bool = False) -> list[dict[str, Any]]:
    """Learning rate 0 everywhere (``iid``: everyone learns on the same mix, FedAvg's weights);
    probe runs use the delta gain so the received-model probe is logged."""
    gain = "range" if signal == "train-reward" else "delta"
    tau = FEDAVG_TAU if iid else setting.cfg.strategy.tau
    kind = ["data.partition=iid"] if iid else ["grpo.learning_rate=0.0"]
    overrides = [*setting.signal(signal, gain, tau), *kind, "eval.every=0"]
    records = setting.run(overrides, work / f"{'iid' if iid else 'null'}-{signal}")
    check_replay(records, load_config(setting.path, [*setting.overrides, *overrides]), gain)
    return records


def measure_mode(
    setting: Setting,
    mode: str,
    nulls: tuple[list[dict[str, Any]], list[dict[str, Any]]],
    taus: list[float],
    work: Path,
    fedavg: tuple[float, float],
) -> dict[str, Any]:
    signal, gain = mode.split("/")
    by_tau = null_by_tau(nulls[0], setting.cfg, gain, taus)
    iid_by_tau = null_by_tau(nulls[1], setting.cfg, gain, taus, test="iid")
    tau = calibrated_tau(by_tau, iid_by_tau)
    stalled = setting.run(
        [*setting.signal(signal, gain, tau), *stalled_overrides(setting.cfg)],
        work / mode.replace("/", "-") / "stalled",
    )
    acc, se = final_eval(stalled)
    samples = setting.probe_samples if signal == "probe-sampled" else 0
    row_factor = (
        one_row_factor(stalled, setting.cfg, gain, tau, samples)
        if signal != "train-reward"
        else math.nan
    )
    if gain == "delta":  # the logged gains are the round's own before/after probe changes
        stalled_id = f"client-{STALLED}"
        learning = {
            "learners": gains_per_round(stalled, lambda cid: cid != stalled_id),
            "stalled": gains_per_round(stalled, lambda cid: cid == stalled_id),
            "iid_clients": gains_per_round(nulls[1]),
        }
    else:
        learning = None
    return {
        "probe_gain_per_round": learning,
        "tau": tau,
        **by_tau[str(tau)],
        **iid_by_tau[str(tau)],
        "null_by_tau": without_rounds(by_tau),
        "iid_by_tau": without_rounds(iid_by_tau),
        "stalled_weight_ratio": stalled_weight_ratio(stalled, f"client-{STALLED}"),
        "one_row_factor": row_factor,
        "effective_clients": effective_clients(stalled),
        "acc_fgrpo": acc,
        "acc_fedavg": fedavg[0],
        "se": se,
        "se_fedavg": fedavg[1],
    }


def table(result: dict[str, Any]) -> str:
    lines = [
        "| signal/gain | tau | null TV median | null TV max | IID TV median | IID TV max | stalled weight / FedAvg | "
        "effective clients | one-row factor | acc FGRPO | acc FedAvg | verdict | meets thresholds | "
        "weights collapsed |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, m in result["modes"].items():
        lines.append(
            f"| {name} | {m['tau']:g} | {m['null_tv_median']:.3f} | {m['null_tv_max']:.3f} | "
            f"{m['iid_tv_median']:.3f} | "
            f"{m['iid_tv_max']:.3f} | {m['stalled_weight_ratio']:.2f} | {m['effective_clients']:.2f} | "
            f"{m['one_row_factor']:.2f} | "
            f"{m['acc_fgrpo']:.3f} ± {m['se']:.3f} | {m['acc_fedavg']:.3f} ± {m['se_fedavg']:.3f} | "
            f"{m['verdict']} | {'yes' if m['meets_thresholds'] else 'no'} | {'yes' if m['collapsed'] else 'no'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--config", default="configs/demo.toml", help="base setting (model, GRPO recipe)"
    )
    parser.add_argument(
        "--modes", default=",".join(MODES), help="comma-separated signal/gain pairs"
    )
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument(
        "--taus", default=TAUS, help="comma-separated temperature grid for the null calibration"
    )
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--alpha", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--probe-samples",
        type=int,
        default=8,
        help="sampled answers per probe row of probe-sampled",
    )
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
        setting = Setting(
            args.config,
            [
                f"federation.rounds={args.rounds}",
                f"federation.num_clients={args.clients}",
                "data.partition=dirichlet",
                f"data.alpha={args.alpha}",
                f"seed={args.seed}",
                "federation.fraction_train=1.0",
                *args.overrides,
            ],
            args.probe_samples,
        )
    except ConfigError as err:
        print(f"fgrpo_signal: {err}", file=sys.stderr)
        return 2
    base, work, taus = setting.cfg, Path(args.work), [float(t) for t in args.taus.split(",")]
    command = "python benchmarks/fgrpo_signal.py " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    result: dict[str, Any] = {
        "modes": {},
        "config_default": f"{base.strategy.signal}/{base.strategy.gain}",
        "thresholds": {
            "null_tv_median": NULL_TV_MEDIAN,
            "null_tv_max": NULL_TV_MAX,
            "stalled_weight_ratio": STALLED_RATIO,
        },
        "taus": taus,
        "setting": {
            "config": args.config,
            "model": base.model.name,
            "rounds": args.rounds,
            "clients": args.clients,
            "alpha": args.alpha,
            "seed": args.seed,
            "local_steps": base.federation.local_steps,
            "probe_size": base.data.probe_size,
            "probe_samples": args.probe_samples,
            "test_size": base.data.test_size,
            "stalled_client": f"client-{STALLED}",
            "from_round": FROM_ROUND,
        },
        "command": command.strip(),
        "machine": f"{platform.machine()} {platform.system()}, {os.cpu_count()} CPU(s), no GPU",
        "date": datetime.date.today().isoformat(),
    }
    nulls = {
        signal: (null_run(setting, signal, work), null_run(setting, signal, work, iid=True))
        for signal in sorted({m.split("/")[0] for m in modes})
    }
    fedavg_records = setting.run(
        ["strategy.name=fedavg", *stalled_overrides(base)], work / "fedavg-stalled"
    )
    fedavg = final_eval(fedavg_records)
    result["fedavg_effective_clients"] = effective_clients(fedavg_records)
    measured = result["modes"]
    for mode in modes:
        m = measure_mode(setting, mode, nulls[mode.split("/")[0]], taus, work, fedavg)
        m["verdict"], m["meets_thresholds"] = verdict(m), passes(m)
        m["collapsed"] = collapsed(m, result["fedavg_effective_clients"])
        measured[mode] = m
        print(
            f"{mode}: {json.dumps({k: v for k, v in m.items() if not k.endswith(('per_round', 'by_tau'))})}",
            flush=True,
        )
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")  # incrementally: a long run
    result["default"] = favoured(measured)
    best = measured[result["default"]]
    summary = (
        f"Favoured mode: {result['default']} ({'meets' if best['meets_thresholds'] else 'does NOT meet'} the "
        f"thresholds null TV median <= {NULL_TV_MEDIAN}, max <= {NULL_TV_MAX} in both null tests, "
        f"stalled ratio <= {STALLED_RATIO}); "
        f"stalled setting: {best['verdict']}, {best['acc_fgrpo']:.3f} vs FedAvg {best['acc_fedavg']:.3f}."
    )
    for name, m in measured.items():
        if m.get("probe_gain_per_round"):
            lrn, iid = (
                m["probe_gain_per_round"]["learners"],
                m["probe_gain_per_round"]["iid_clients"],
            )
            summary += (
                f" {name}: one round of local training moves a learning client's own probe by "
                f"{lrn['mean']:+.4f} ± {lrn['se']:.4f} of the reward range in the stalled setting "
                f"({lrn['n']} client-rounds from round {FROM_ROUND}; the stalled client: exactly 0), "
                f"{iid['mean']:+.4f} ± {iid['se']:.4f} in the IID null."
            )
    loose = [name for name, m in measured.items() if unbounded(m)]
    if loose:
        summary += (
            f" Left out because one probe row can move a weight by more than {ROW_FACTOR:g}x: "
            f"{', '.join(loose)}."
        )
    gone = [name for name, m in measured.items() if m["collapsed"]]
    if gone:
        summary += (
            f" Left out because their weights collapsed onto one client (median effective clients below half "
            f"of FedAvg's {result['fedavg_effective_clients']:.2f}): {', '.join(gone)}."
        )
    result["summary"] = summary
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    md = [
        "# FGRPO signal x gain: null and stalled-client tests",
        "",
        f"- command: `{result['command']}`",
        f"- machine: {result['machine']}",
        f"- date: {result['date']}",
        f"- setting: {json.dumps(result['setting'])}",
        "",
        table(result),
        "",
        summary,
        "",
    ]
    Path(args.md).write_text("\n".join(md))
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
