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
  by replay; a mode above 2x is left out of the favoured choice (issue 23).
- favoured mode (``favoured``): modes whose weights collapse onto one client are left out (see
  ``collapsed``), then the thresholds of issue 10 decide.

    .venv/bin/python benchmarks/fgrpo_signal.py            # every mode, 10 rounds (about an hour)
    .venv/bin/python benchmarks/fgrpo_signal.py --rounds 2 --modes train-reward/range --set
    model.name=tiny-random

Writes ``--json`` (schema in issue 10) after every run and ``--md`` (a table, the command,
machine and date) at the end.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import os
import platform
import sys
from collections.abc import Callable
from pathlib import Path
from statistics import fmean, median, stdev
from typing import Any

from fgrpo.core.config import Config
from fgrpo.core.errors import ConfigError
from fgrpo.core.fgrpo_rule import (
    TaskSignal,
    client_gain,
    fgrpo_params,
    fgrpo_weights,
    update_histories,
)
from fgrpo.runtime.configs import load_config
from fgrpo.runtime.run_setup import clear
from fgrpo.runtime.runner import run_experiment
from fgrpo.runtime.sweep import same_config
from fgrpo.tasks.rewards import reward_ranges

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
FROM_ROUND = (
    3  # the stalled client's weight is averaged from this round on (baselines have settled)
)
# Done-when thresholds of issue 10
NULL_TV_MEDIAN, NULL_TV_MAX, STALLED_RATIO = 0.05, 0.15, 0.5
TAUS = "3,1,0.3,0.1,0.03,0.01"
ROW_FACTOR = 2.0  # a default gain's bound: one probe row moves no weight by more than this factor
FEDAVG_TAU = 1e6  # FGRPO at this temperature gives n_k / sum n: signals logged, weights FedAvg's


def rounds_of(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def tv_from_fedavg(clients: list[dict[str, Any]]) -> float:
    """Total-variation distance between the weights used and FedAvg's n_k / sum n."""
    total = sum(c["num-examples"] for c in clients)
    return 0.5 * sum(abs(c["weight"] - c["num-examples"] / total) for c in clients)


def effective_clients(records: list[dict[str, Any]]) -> float:
    """Median over rounds (from FROM_ROUND) of 1 / sum w_k^2: how many clients the aggregate really
    averages."""
    return median(
        1.0 / sum(c["weight"] ** 2 for c in r["clients"]) for r in records[FROM_ROUND - 1 :]
    )


def stalled_weight_ratio(records: list[dict[str, Any]], client_id: str) -> float:
    ratios = []
    for record in records[FROM_ROUND - 1 :]:
        clients = record["clients"]
        total = sum(c["num-examples"] for c in clients)
        ratios += [
            c["weight"] / (c["num-examples"] / total)
            for c in clients
            if c["client-id"] == client_id
        ]
    return fmean(ratios) if ratios else math.nan


def gains_per_round(
    records: list[dict[str, Any]], keep: Callable[[str], bool] = lambda _: True
) -> dict[str, float]:
    """Mean logged client gain per round from FROM_ROUND on, over the clients whose id ``keep``
    accepts, with its standard error over client-rounds. Under the ``delta`` gain this is how far
    one round of local training moves a client's own probe, in units of its tasks' reward ranges."""
    gains = [
        c["gain"]
        for r in records[FROM_ROUND - 1 :]
        for c in r["clients"]
        if keep(c["client-id"]) and c.get("gain") is not None
    ]
    if len(gains) < 2:
        return {"mean": math.nan, "se": math.nan, "n": len(gains)}
    return {"mean": fmean(gains), "se": stdev(gains) / math.sqrt(len(gains)), "n": len(gains)}


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


def final_eval(records: list[dict[str, Any]]) -> tuple[float, float]:
    """(macro accuracy, its binomial standard error) of the last evaluated round."""
    last = next(r for r in reversed(records) if "eval" in r)
    return last["eval"]["macro"], last["eval_se"]["macro"]


def stalled_overrides(cfg: Config) -> list[str]:
    """Client STALLED does not learn; evaluate the final round only."""
    return [
        f'federation.client_lr_scale={{"{STALLED}" = 0.0}}',
        f"eval.every={cfg.federation.rounds}",
    ]


def replay_weights(
    records: list[dict[str, Any]], cfg: Config, gain: str, tau: float
) -> list[list[float]]:
    """Per round, the weights the FGRPO rule gives the logged per-task signals under
    ``gain``/``tau``."""
    params = dataclasses.replace(fgrpo_params(cfg), gain_mode=gain, tau=tau)
    ranges, history, weights = reward_ranges(cfg), {}, []
    for record in records:
        sizes, gains = [], []
        for client in record["clients"]:
            signals = {
                task: TaskSignal(
                    p=t["signal"],
                    n=t["rollouts"],
                    r_min=ranges[task][0],
                    r_max=ranges[task][1],
                    p_before=t.get("before"),
                )
                for task, t in client["tasks"].items()
            }
            past = history.get(client["client-id"], {})
            g, _ = client_gain(signals, past, params)
            history[client["client-id"]] = update_histories(past, signals, params)
            sizes.append(client["num-examples"])
            gains.append(g)
        weights.append(list(fgrpo_weights(sizes, gains, params)))
    return weights


def one_row_factor(
    records: list[dict[str, Any]], cfg: Config, gain: str, tau: float, samples: int
) -> float:
    """The most one probe row can move a weight: per round, client and task, the logged signal is
    moved by one row's worth (the task's range over its probe rows) up and down, and the factor
    max(w'/w, w/w') between the weights with and without the move is taken over every client."""
    params = dataclasses.replace(fgrpo_params(cfg), gain_mode=gain, tau=tau)
    ranges, history, worst = reward_ranges(cfg), {}, 1.0
    for record in records:
        clients = record["clients"]
        signals = [
            {
                task: TaskSignal(
                    p=t["signal"],
                    n=t["rollouts"],
                    r_min=ranges[task][0],
                    r_max=ranges[task][1],
                    p_before=t.get("before"),
                )
                for task, t in c["tasks"].items()
            }
            for c in clients
        ]
        past = [history.get(c["client-id"], {}) for c in clients]
        sizes = [c["num-examples"] for c in clients]

        def weights(moved: list[dict[str, TaskSignal]], sizes=sizes, past=past) -> Any:
            return fgrpo_weights(
                sizes,
                [client_gain(s, h, params)[0] for s, h in zip(moved, past, strict=True)],
                params,
            )

        base = weights(signals)
        for k, client_signals in enumerate(signals):
            for task, s in client_signals.items():
                step = s.width * max(1, samples) / s.n  # one row's answers, all of them moved
                for sign in (1.0, -1.0):
                    moved = list(signals)
                    moved[k] = {**client_signals, task: dataclasses.replace(s, p=s.p + sign * step)}
                    w = weights(moved)
                    worst = max(worst, float(max(max(w / base), max(base / w))))
        for c, s, h in zip(clients, signals, past, strict=True):
            history[c["client-id"]] = update_histories(h, s, params)
    return worst


def null_tvs(records: list[dict[str, Any]], weights: list[list[float]]) -> list[float]:
    return [
        tv_from_fedavg([{**c, "weight": w} for c, w in zip(r["clients"], ws, strict=True)])
        for r, ws in zip(records, weights, strict=True)
    ]


def check_replay(records: list[dict[str, Any]], cfg: Config, gain: str) -> None:
    """The replay of the null run's own mode must give the weights its server logged."""
    replayed = replay_weights(records, cfg, gain, cfg.strategy.tau)
    logged = [[c["weight"] for c in r["clients"]] for r in records]
    worst = max(
        abs(a - b)
        for ws, ls in zip(replayed, logged, strict=False)
        for a, b in zip(ws, ls, strict=False)
    )
    if worst > 1e-9:
        raise RuntimeError(f"replay of {gain} differs from the logged weights by {worst:.3g}")


def null_by_tau(
    records: list[dict[str, Any]], cfg: Config, gain: str, taus: list[float], test: str = "null"
) -> dict[str, dict[str, Any]]:
    out = {}
    for tau in taus:
        tvs = null_tvs(records, replay_weights(records, cfg, gain, tau))
        out[str(tau)] = {
            f"{test}_tv_median": median(tvs),
            f"{test}_tv_max": max(tvs),
            f"{test}_tv_per_round": tvs,
        }
    return out


def without_rounds(by_tau: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        t: {k: v for k, v in m.items() if not k.endswith("per_round")} for t, m in by_tau.items()
    }


def calibrated_tau(
    by_tau: dict[str, dict[str, Any]], iid_by_tau: dict[str, dict[str, Any]]
) -> float:
    """The smallest tau meeting the null thresholds in both null tests; the largest of the grid if
    none does."""
    ok = [float(t) for t, m in by_tau.items() if null_met(m) and null_met(iid_by_tau[t], "iid")]
    return min(ok) if ok else max(float(t) for t in by_tau)


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


def passes(m: dict[str, Any]) -> bool:
    return null_met(m) and null_met(m, "iid") and m["stalled_weight_ratio"] <= STALLED_RATIO


def collapsed(m: dict[str, Any], fedavg_effective: float) -> bool:
    """Weights that average fewer than half as many clients as FedAvg's: near-selection of one
    client per round. The null test cannot see this for probe signals (with learning rate 0 a
    probe is constant, so every temperature passes it); this guard was added after the first full
    run showed probe/ratio and probe/zscore at tau = 0.03 giving >= 0.96 of the weight to one
    client."""
    return m["effective_clients"] < fedavg_effective / 2


def unbounded(m: dict[str, Any]) -> bool:
    """One probe row can move a weight by more than ROW_FACTOR (issue 23's bound on the default)."""
    return bool(m["one_row_factor"] > ROW_FACTOR)


def null_met(m: dict[str, Any], test: str = "null") -> bool:
    return bool(m[f"{test}_tv_median"] <= NULL_TV_MEDIAN and m[f"{test}_tv_max"] <= NULL_TV_MAX)


def favoured(modes: dict[str, dict[str, Any]]) -> str:
    """Among modes whose weights have not collapsed: those meeting every threshold, by
    stalled-setting accuracy; else those meeting the null test, by the smallest stalled-client
    weight; else the smallest null TV."""
    sound = {
        name: m for name, m in modes.items() if not m["collapsed"] and not unbounded(m)
    } or modes
    passing = [name for name, m in sound.items() if passes(m)]
    if passing:
        return max(passing, key=lambda name: sound[name]["acc_fgrpo"])
    null_ok = [name for name, m in sound.items() if null_met(m) and null_met(m, "iid")]
    if null_ok:
        return min(null_ok, key=lambda name: sound[name]["stalled_weight_ratio"])
    return min(
        sound, key=lambda name: (sound[name]["null_tv_median"], sound[name]["stalled_weight_ratio"])
    )


def verdict(m: dict[str, Any]) -> str:
    gap = m["acc_fgrpo"] - m["acc_fedavg"]
    noise = 2 * math.hypot(m["se"], m["se_fedavg"])
    if gap > noise:
        return "FGRPO beats FedAvg"
    return "FGRPO does not beat FedAvg" + (" (worse)" if gap < -noise else " (within 2 se)")


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
