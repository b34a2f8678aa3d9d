"""The round's training reward, one definition for the console, metrics.jsonl and every plot.

Tasks score on different scales ({0, 1}, {0, 10}, [0, 5], {-1, +1}, a data source's own range), so
a mean of raw rewards over clients says more about which tasks a client holds than about learning.
Every client therefore reports its rollouts' mean total reward per task (``task-rewards``, a
ConfigRecord beside the metrics: clients hold different tasks, and Flower averages a MetricRecord
key by key); the round's reward is the rollout-weighted mean over every client and task of

    (r̄_{k,τ} − r_min,τ) / (r_max,τ − r_min,τ)

the fraction of each task's declared range reached: 0 is the worst a task can score, 1 the best.
``by_task`` keeps each task's raw rollout-weighted mean beside it, ``by_task_normalised`` the same
as a fraction of its range (what the per-task plot draws).
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

TASK_REWARDS_KEY = "task-rewards"  # reply ConfigRecord: mean/<task>, rollouts/<task>
MEAN, ROLLOUTS = "mean/", "rollouts/"


def task_reward_record(means: dict[str, tuple[float, int]]) -> dict[str, float]:
    """A client's per-task (mean total reward, rollouts) as the reply's record holds them."""
    return {
        **{MEAN + t: float(m) for t, (m, _) in means.items()},
        **{ROLLOUTS + t: float(n) for t, (_, n) in means.items()},
    }


def read_task_rewards(record: Any) -> dict[str, tuple[float, float]]:
    """{task: (mean, rollouts)} from a reply's record; ValueError for a malformed or non-finite
    one."""
    if record is None:
        return {}
    out = {}
    for key, value in record.items():
        if key.startswith(MEAN):
            task = key[len(MEAN) :]
            mean, rollouts = float(value), float(record.get(ROLLOUTS + task, math.nan))
            if not (math.isfinite(mean) and math.isfinite(rollouts) and rollouts > 0):
                raise ValueError(
                    f"task reward of {task!r} is not a finite mean over > 0 rollouts: {mean}, {rollouts}"
                )
            out[task] = (mean, rollouts)
    return out


def round_reward(
    clients: list[dict[str, Any]], ranges: dict[str, tuple[float, float]]
) -> dict[str, Any] | None:
    """{"normalised": the round's reward, "by_task": {task: raw mean}, "by_task_normalised": ...}
    over the clients' ledger rows (their ``task-reward``); None when no client reported one."""
    weighted: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for client in clients:
        for task, entry in (client.get("task-reward") or {}).items():
            if task in ranges:  # a label the run declares no range for cannot be normalised
                weighted[task].append((entry["mean"], entry["rollouts"]))
    if not weighted:
        return None
    by_task = {
        t: sum(m * n for m, n in v) / sum(n for _, n in v) for t, v in sorted(weighted.items())
    }
    fraction = {t: (m - ranges[t][0]) / (ranges[t][1] - ranges[t][0]) for t, m in by_task.items()}
    rollouts = {t: sum(n for _, n in v) for t, v in weighted.items()}
    normalised = sum(rollouts[t] * fraction[t] for t in by_task) / sum(rollouts.values())
    return {"normalised": normalised, "by_task": by_task, "by_task_normalised": fraction}
