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

from collections import defaultdict
from typing import Any


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


def macro_text(evaluation: dict[str, dict[str, float]]) -> str:
    """ "macro acc 0.412 ± 0.015" for a progress line."""
    return f"macro acc {evaluation['eval']['macro']:.3f} ± {evaluation['eval_se']['macro']:.3f}"


def train_reward(record: dict[str, Any]) -> float | None:
    """The round's reward, one definition for the console, metrics.jsonl and every plot: the
    rollout-weighted fraction of each task's declared reward range reached (fgrpo.server.round_reward;
    ``reward.normalised`` in metrics.jsonl). None for a round without it (a run logged before it:
    its ``train.reward`` mixes the tasks' scales and is not plotted)."""
    return (record.get("reward") or {}).get("normalised")
