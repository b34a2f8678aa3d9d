"""Paired differences within a sweep: each value of one config key minus the baseline value, per
strategy (e.g. every ``model.lora_aggregation`` mode against ``average``), and each strategy minus
FedAvg in one setting; final macro accuracy paired by seed, with the 95% t-interval."""

from __future__ import annotations

from statistics import fmean
from typing import Any

from fgrpo.core.config import Config
from fgrpo.runtime.report import minus_baseline
from fgrpo.runtime.stats import mean_std, paired_interval
from fgrpo.runtime.sweep_runs import Run, curve


def config_value(run: Run, dotted: str) -> Any:
    """The run's value of a dotted key; a run from before the key existed ran with its default."""
    try:
        return _walk(run.config, dotted)
    except KeyError:
        return _walk(Config().to_dict(), dotted)


def _walk(tree: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        tree = tree[part]
    return tree


def paired_against(runs: list[Run], key: str, baseline: Any) -> list[dict[str, Any]]:
    """One row per (strategy, value other than ``baseline``): seeds paired, mean difference of the
    final macro accuracy, its 95% interval (None below 2 pairs), and both values' mean ± std."""
    finals: dict[tuple[str, Any], dict[int, float]] = {}
    for run in runs:
        finals.setdefault((run.strategy, config_value(run, key)), {})[run.seed] = run.summary[
            "final_eval"
        ]["macro"]
    rows = []
    for (strategy, value), by_seed in sorted(finals.items(), key=lambda kv: str(kv[0])):
        base = finals.get((strategy, baseline))
        if value == baseline or base is None:
            continue
        seeds = sorted(set(by_seed) & set(base))
        interval = paired_interval([by_seed[s] for s in seeds], [base[s] for s in seeds])
        rows.append(
            {
                "strategy": strategy,
                "value": value,
                "pairs": len(seeds),
                "final": mean_std([by_seed[s] for s in seeds]),
                "baseline_final": mean_std([base[s] for s in seeds]),
                "difference": None if interval is None else interval[0],
                "interval": None if interval is None else [interval[1], interval[2]],
            }
        )
    return rows


def against_fedavg(by_strategy: dict[str, list[Run]]) -> dict[str, dict[str, Any]]:
    """One setting's strategies: their seeds' final macro accuracy (and its mean ± std), start,
    per-task finals, macro curve (mean and std over seeds) and, for all but FedAvg, the final
    minus FedAvg's paired by seed with its 95% interval (None below 2 pairs)."""
    against = minus_baseline(by_strategy)
    record = {}
    for strategy, runs in by_strategy.items():
        finals = {r.seed: r.summary["final_eval"] for r in runs}
        mean, sd = mean_std([f["macro"] for f in finals.values()])
        tasks = [t for t in next(iter(finals.values())) if t != "macro"]
        pair, interval = against.get(strategy, ([], None))
        record[strategy] = {
            "final_macro": {str(s): f["macro"] for s, f in sorted(finals.items())},
            "final_macro_mean": mean,
            "final_macro_std": sd,
            "start_macro": fmean(r.summary["initial_eval"]["macro"] for r in runs),
            "final_per_task": {t: fmean(f[t] for f in finals.values()) for t in tasks},
            "curve": [{"round": x, "mean": m, "std": s} for x, m, s in curve(runs, "macro")],
            "minus_fedavg": None
            if interval is None
            else {"difference": interval[0], "interval": list(interval[1:]), "pairs": len(pair)},
        }
    return record
