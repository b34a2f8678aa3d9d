"""Does FGRPO spot a stalled client on a real model? SmolLM2-135M-Instruct, one client at learning
rate 0 among three learners.

The setting is ``benchmarks/real_model.toml``'s four-client one (configs/smollm2.toml: 4 clients,
Dirichlet alpha 0.5 over small-addition, small-multiplication and comparison), with client 0's
learning rate scaled to 0 (``federation.client_lr_scale``) and every client in every round. Per
mode (FGRPO's default, then the probe modes) one real Flower simulation
(``fgrpo.runtime.runner.run_experiment``, the path ``fgrpo run`` takes), and one FedAvg run of the
same setting for the accuracy it reaches. From the logged rounds (from round ``FROM_ROUND`` on):

- the stalled client's weight as a fraction of its FedAvg weight n_k / sum n (a rule that spots it
  gives well under 1; the stalled-client threshold is 0.5);
- the learners' per-round gain: mean, sd over client-rounds and mean/sd, the signal-to-noise
  ``benchmarks/fgrpo_snr.py`` defines (for a ``delta`` gain, how far one round of local training
  moves a client's own probe), beside the signal-to-noise that model needs (``needed_snr``), and
  the stalled client's own gains;
- the stalled client's weight ratio when the production rule is replayed on the run's logged
  signals at other temperatures (the run itself used the configured tau), and under every other
  probe gain at the configured tau.

    .venv/bin/python benchmarks/fgrpo_stalled_real.py                      # ~1 h on 2 cores
    .venv/bin/python benchmarks/fgrpo_stalled_real.py --rounds 3 --modes probe/delta \\
        --set model.name=tiny-random --set data.test_size=8 --work runs/stalled_smoke

Writes ``--json`` after every run and ``--md`` at the end; finished runs of the same resolved
config are read back, not repeated.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from statistics import fmean, stdev
from typing import Any

from bench_common import RESULTS, provenance
from fgrpo_signal import MODES, STALLED, Setting, stalled_overrides

from fgrpo.analysis.snr import needed_snr
from fgrpo.analysis.weights import (
    FROM_ROUND,
    STALLED_RATIO,
    client_gains,
    effective_clients,
    final_eval,
    replay_weights,
    stalled_weight_ratio,
    with_weights,
)
from fgrpo.core.errors import ConfigError

FOUR_CLIENTS = [
    "federation.num_clients=4",
    "data.partition=dirichlet",
    "data.alpha=0.5",
    'data.tasks=["small-addition", "small-multiplication", "comparison"]',
    "data.train_size=600",
    "federation.fraction_train=1.0",
]
REPLAY_TAUS = (3.0, 1.0, 0.3, 0.1, 0.03, 0.01)
GAINS = ("range", "ratio", "zscore", "delta")  # delta replays only where the run probed before
STALLED_ID = f"client-{STALLED}"


def learners(cid: str) -> bool:
    return cid != STALLED_ID


def stalled(cid: str) -> bool:
    return cid == STALLED_ID


def gain_stats(gains: list[float]) -> dict[str, float]:
    """Mean, sd and mean/sd over client-rounds (NaN where fewer than two)."""
    if len(gains) < 2:
        return {"mean": math.nan, "sd": math.nan, "snr": math.nan, "n": len(gains)}
    sd = stdev(gains)
    return {
        "mean": fmean(gains),
        "sd": sd,
        "snr": fmean(gains) / sd if sd else math.nan,
        "n": len(gains),
    }


def mean_eval(finals: list[tuple[float, float]]) -> dict[str, float]:
    """Mean final macro accuracy over seeds, and the standard error of that mean."""
    return {
        "acc": fmean(a for a, _ in finals),
        "se": math.sqrt(sum(se**2 for _, se in finals)) / len(finals),
    }


def rounds_table(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per round, each client's weight and gain (the log a reader checks the summary against)."""
    return [
        {
            "round": r["round"],
            "clients": {
                c["client-id"]: {"weight": c["weight"], "gain": c.get("gain")} for c in r["clients"]
            },
        }
        for r in records
    ]


def measure(setting: Setting, mode: str, seeds: list[int], work: Path) -> dict[str, Any]:
    signal, gain = mode.split("/")
    tau = setting.cfg.strategy.tau
    runs = {
        seed: setting.run(
            [*setting.signal(signal, gain, tau), *stalled_overrides(setting.cfg), f"seed={seed}"],
            work / mode.replace("/", "-") / f"seed{seed}",
        )
        for seed in seeds
    }
    replays = {
        t: [with_weights(rec, replay_weights(rec, setting.cfg, gain, t)) for rec in runs.values()]
        for t in REPLAY_TAUS
    }
    replay = {
        str(t): {
            "stalled_weight_ratio": fmean(stalled_weight_ratio(r, STALLED_ID) for r in rs),
            "effective_clients": fmean(effective_clients(r) for r in rs),
        }
        for t, rs in replays.items()
    }
    other_gains = {
        g: fmean(
            stalled_weight_ratio(
                with_weights(rec, replay_weights(rec, setting.cfg, g, tau)), STALLED_ID
            )
            for rec in runs.values()
        )
        for g in GAINS
        if g != "delta" or gain == "delta"
    }
    return {
        "replayed_gains": other_gains,
        "tau": tau,
        "stalled_weight_ratio": fmean(
            stalled_weight_ratio(rec, STALLED_ID) for rec in runs.values()
        ),
        "effective_clients": fmean(effective_clients(rec) for rec in runs.values()),
        "learners_gain": gain_stats(
            [g for rec in runs.values() for g in client_gains(rec, learners)]
        ),
        # delta needs no history: its rounds 1-2 count too (zscore's are 0 by its warm-up)
        "learners_gain_every_round": gain_stats(
            [g for rec in runs.values() for g in client_gains(rec, learners, first=1)]
        ),
        "stalled_gain": gain_stats(
            [g for rec in runs.values() for g in client_gains(rec, stalled)]
        ),
        "replayed_by_tau": replay,
        **mean_eval([final_eval(rec) for rec in runs.values()]),
        "rounds": {str(seed): rounds_table(rec) for seed, rec in runs.items()},
    }


def report(result: dict[str, Any]) -> str:
    need = result["needed"]
    lines = [
        "# Does FGRPO spot a stalled client on a real model? (SmolLM2-135M-Instruct)",
        "",
        f"- command: `{result['command']}`",
        f"- machine: {result['machine']}",
        f"- date: {result['date']}",
        f"- setting: {json.dumps(result['setting'])}",
        "",
        f"Client {STALLED} trains at learning rate 0; the other three learn. Weight ratios and gains "
        f'from round {FROM_ROUND} on ("every round": from round 1, where a delta gain needs no '
        f"history and zscore's is 0 by its warm-up). FedAvg in the same setting: macro accuracy "
        f"{result['fedavg']['acc']:.3f} ± {result['fedavg']['se']:.3f}. The signal-to-noise the "
        f"stalled-client and null thresholds need (benchmarks/fgrpo_snr.py's model, 4 clients): "
        f"**{need['snr']}**.",
        "",
        "| mode | tau | stalled weight / FedAvg | effective clients | learners' gain per round (mean ± sd) "
        "| signal-to-noise | signal-to-noise, every round | stalled client's gain (mean ± sd) | client-rounds "
        "| final macro acc |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, m in result["modes"].items():
        lg, sg = m["learners_gain"], m["stalled_gain"]
        lines.append(
            f"| {name} | {m['tau']:g} | {m['stalled_weight_ratio']:.2f} | {m['effective_clients']:.2f} | "
            f"{lg['mean']:+.4f} ± {lg['sd']:.4f} | {lg['snr']:.2f} | "
            f"{m['learners_gain_every_round']['snr']:.2f} | {sg['mean']:+.4f} ± {sg['sd']:.4f} | "
            f"{lg['n']} | {m['acc']:.3f} ± {m['se']:.3f} |"
        )
    lines += [
        "",
        "Replayed on each run's logged signals (the same production rule, another temperature): the "
        "stalled client's weight / FedAvg's, and (in brackets) the effective number of clients "
        "1 / sum w^2 (FedAvg's here: " + f"{result['fedavg']['effective_clients']:.2f}).",
        "",
        "| mode | " + " | ".join(f"τ {t:g}" for t in REPLAY_TAUS) + " |",
        "| --- | " + " | ".join("---" for _ in REPLAY_TAUS) + " |",
    ]
    lines += [
        f"| {name} | "
        + " | ".join(
            f"{r['stalled_weight_ratio']:.2f} ({r['effective_clients']:.2f})"
            for r in (m["replayed_by_tau"][str(t)] for t in REPLAY_TAUS)
        )
        + " |"
        for name, m in result["modes"].items()
    ]
    lines += [
        "",
        "Each run's logged probe signals replayed under every probe gain at its tau: the stalled "
        "client's weight / FedAvg's.",
        "",
        "| run | " + " | ".join(GAINS) + " |",
        "| --- | " + " | ".join("---" for _ in GAINS) + " |",
    ]
    lines += [
        f"| {name} | "
        + " | ".join(
            f"{m['replayed_gains'][g]:.2f}" if g in m["replayed_gains"] else "(no before-probe)"
            for g in GAINS
        )
        + " |"
        for name, m in result["modes"].items()
    ]
    return "\n".join([*lines, "", result["summary"], ""])


def summary(result: dict[str, Any]) -> str:
    need, parts = result["needed"]["snr"], []
    for name, m in result["modes"].items():
        spotted = m["stalled_weight_ratio"] <= STALLED_RATIO
        parts.append(
            f"{name} (tau {m['tau']:g}): the stalled client keeps {m['stalled_weight_ratio']:.2f} of its "
            f"FedAvg weight ({'spotted' if spotted else 'not spotted'}: the bar is {STALLED_RATIO}); the "
            f"learners' per-round gain has signal-to-noise {m['learners_gain']['snr']:.2f} "
            f"(needed: {need})."
        )
    return " ".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="configs/smollm2.toml")
    parser.add_argument(
        "--modes",
        default="probe/zscore,probe/delta",
        help="comma-separated signal/gain pairs (the default mode first)",
    )
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seeds", default="0", help="comma-separated seeds; gains pool over them")
    parser.add_argument("--probe-samples", type=int, default=4)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--work", default="runs/fgrpo_stalled_real")
    parser.add_argument(
        "--out", default=str(RESULTS / "fgrpo_stalled_real"), help="OUT.json, OUT.md"
    )
    args = parser.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    seeds = [int(s) for s in args.seeds.split(",")]
    try:
        unknown = [m for m in modes if m not in MODES]
        if unknown:
            raise ConfigError("--modes", f"unknown {', '.join(unknown)}; known: {', '.join(MODES)}")
        setting = Setting(
            args.config,
            [*FOUR_CLIENTS, f"federation.rounds={args.rounds}", *args.overrides],
            args.probe_samples,
        )
    except ConfigError as err:
        print(f"fgrpo_stalled_real: {err}", file=sys.stderr)
        return 2
    work, out = Path(args.work), Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {
        "setting": {
            "config": args.config,
            "overrides": setting.overrides,
            "model": setting.cfg.model.name,
            "seeds": seeds,
            "stalled_client": STALLED_ID,
            "from_round": FROM_ROUND,
            "probe_size": setting.cfg.data.probe_size,
            "probe_samples": args.probe_samples,
        },
        "needed": needed_snr(),
        "modes": {},
        **provenance("fgrpo_stalled_real.py", argv),
    }
    fedavg_runs = [
        setting.run(
            ["strategy.name=fedavg", *stalled_overrides(setting.cfg), f"seed={seed}"],
            work / "fedavg" / f"seed{seed}",
        )
        for seed in seeds
    ]
    result["fedavg"] = {
        "effective_clients": fmean(effective_clients(rec) for rec in fedavg_runs),
        **mean_eval([final_eval(rec) for rec in fedavg_runs]),
    }
    for mode in modes:
        result["modes"][mode] = measure(setting, mode, seeds, work)
        out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    result["summary"] = summary(result)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    text = report(result)
    out.with_suffix(".md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
