"""Federated-learning effects as paired differences over seeds (the testbed's instrument).

An effect compares two sets of runs picked by their config (``select``: dotted keys and values,
e.g. ``{"strategy.name": "fedavg", "data.partition": "iid"}``), one run per seed on each side:
the final macro accuracy of ``better`` minus ``worse`` per seed, its mean, and the 95%
t-interval; it is *shown* when the interval lies above 0. ``learns`` is the "every task learns"
effect: per task, each seed's final minus starting accuracy, shown when the interval lies above 0
and the mean gain is at least ``min_se`` of its standard error (√(se₀² + se₁²), the seeds' mean).
"""

from __future__ import annotations

import math
from statistics import fmean
from typing import Any

from fgrpo.analysis.paired import config_value
from fgrpo.runtime.stats import paired_interval
from fgrpo.runtime.sweep_runs import Run


class AmbiguousSelection(ValueError):
    """A selection that picks two runs of one seed (their config differs in a key it does not name)."""


def select(runs: list[Run], where: dict[str, Any]) -> dict[int, Run]:
    """The runs whose config has every value of ``where``, by seed; AmbiguousSelection on two runs
    of one seed."""
    chosen: dict[int, Run] = {}
    for run in runs:
        if all(config_value(run, key) == value for key, value in where.items()):
            if run.seed in chosen:
                raise AmbiguousSelection(
                    f"{where} picks {chosen[run.seed].name} and {run.name}: name the key that "
                    "tells them apart"
                )
            chosen[run.seed] = run
    return chosen


def difference(better: dict[int, Run], worse: dict[int, Run], value: Any = None) -> dict[str, Any]:
    """``better − worse`` of ``value(run)`` (default: final macro accuracy), paired by seed."""
    value = value or (lambda run: run.summary["final_eval"]["macro"])
    seeds = sorted(set(better) & set(worse))
    interval = paired_interval([value(better[s]) for s in seeds], [value(worse[s]) for s in seeds])
    if interval is None:
        mean = fmean(value(better[s]) - value(worse[s]) for s in seeds) if seeds else None
        return {"difference": mean, "interval": None, "seeds": len(seeds), "shown": False}
    mean, low, high = interval
    return {"difference": mean, "interval": [low, high], "seeds": len(seeds), "shown": low > 0}


def task_gains(runs: dict[int, Run], min_se: float = 3.0) -> dict[str, dict[str, Any]]:
    """Per task: final − starting accuracy paired by seed, and its size in standard errors."""
    any_run = next(iter(runs.values()))
    out = {}
    for task in sorted(t for t in any_run.summary["final_eval"] if t != "macro"):
        final = {s: r.summary["final_eval"][task] for s, r in runs.items()}
        start = {s: r.summary["initial_eval"][task] for s, r in runs.items()}
        seeds = sorted(runs)
        interval = paired_interval([final[s] for s in seeds], [start[s] for s in seeds])
        gain = fmean(final[s] - start[s] for s in seeds)
        se = fmean(
            math.hypot(r.summary["initial_eval_se"][task], r.summary["final_eval_se"][task])
            for r in runs.values()
        )
        in_se = gain / se if se > 0 else math.inf
        out[task] = {
            "difference": gain,
            "interval": None if interval is None else [interval[1], interval[2]],
            "seeds": len(seeds),
            "in_se": in_se,
            "shown": interval is not None and interval[1] > 0 and in_se >= min_se,
        }
    return out


def compute_effects(
    definitions: dict[str, dict[str, Any]], runs: list[Run]
) -> dict[str, dict[str, Any]]:
    """A sweep file's ``[effects]`` on its runs: ``<name>`` for a better/worse pair, ``<name>:
    <task>`` for each task of a ``learns`` effect. An effect whose runs are not there yet (a slice
    still to come) is a row of 0 seeds, not shown, never a silent gap; so is one these runs make
    ambiguous (a tuning slice that varies a key the effect does not name), with a note saying so."""
    out: dict[str, dict[str, Any]] = {}
    for name, spec in definitions.items():
        try:
            if "learns" in spec:
                chosen = select(runs, spec["learns"])
                if not chosen:
                    out[name] = difference({}, {})
                    continue
                for task, gain in task_gains(chosen, spec.get("min_se", 3.0)).items():
                    out[f"{name}: {task}"] = gain
                continue
            better, worse = select(runs, spec["better"]), select(runs, spec["worse"])
            out[name] = difference(better, worse)
        except AmbiguousSelection as err:
            out[name] = {**difference({}, {}), "note": f"ambiguous on these runs: {err}"}
    return out


def effects_markdown(effects: dict[str, dict[str, Any]]) -> list[str]:
    """The effects table: each effect's paired difference, its 95% interval and whether it shows."""
    rows = [
        "| effect | difference | 95% interval | seeds | shown |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, e in effects.items():
        interval = "n/a" if e["interval"] is None else "[{:+.3f}, {:+.3f}]".format(*e["interval"])
        diff = "n/a" if e["difference"] is None else f"{e['difference']:+.3f}"
        extra = f" ({e['in_se']:+.1f} se)" if "in_se" in e else ""
        rows.append(
            f"| {name} | {diff}{extra} | {interval} | {e['seeds']} | {'yes' if e['shown'] else 'no'} |"
        )
    notes = [f"- {name}: {e['note']}" for name, e in effects.items() if "note" in e]
    return rows + ([""] + notes if notes else [])
