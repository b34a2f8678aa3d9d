"""Paired differences between the values of one config key within a sweep: each value's final
macro accuracy minus the baseline value's, per strategy, paired by seed, with the 95% t-interval
(e.g. every ``model.lora_aggregation`` mode against ``average``)."""

from __future__ import annotations

from typing import Any

from fgrpo.core.config import Config
from fgrpo.runtime.stats import mean_std, paired_interval
from fgrpo.runtime.sweep_runs import Run


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
