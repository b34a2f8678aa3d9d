"""The client's half of FGRPO: per-task performance signals and (optionally) its own baselines.

- ``train-reward``: ``RolloutRecorder`` wraps the reward functions handed to TRL, so every
  rollout's task label and total reward are known; the first ``strategy.signal_skip_steps``
  local steps are left out because they sample the received global model, which is the same
  for every client and says nothing about this client's update.
- ``probe``: ``split_probe`` carves a fixed probe from the partition (never trained on, the
  same prompts every round); ``probe_signals`` scores greedy answers on it per task, or
  ``strategy.probe_samples`` sampled answers per row drawn with the same random numbers every
  time it is called, so before/after differences measure the model, not the draw.
- ``strategy.baseline_at = "client"``: ``client_side_gain`` keeps the per-task history in the
  Flower ``context.state`` and only g_k leaves the client.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import random
from collections import defaultdict
from collections.abc import Callable
from statistics import fmean
from typing import Any

import torch
from datasets import Dataset
from flwr.app import ConfigRecord, RecordDict

from ..config import Config, ConfigError
from ..evaluation import completion_rewards
from ..server.strategies import fgrpo_params
from ..server.strategies.fgrpo import GAIN_KEY, SIGNAL_REQUEST_KEY, SIGNALS_RECORD_KEY, task_metrics
from ..server.strategies.fgrpo_rule import TaskHistory, TaskSignal, client_gain, update_histories
from ..tasks.rewards import function_weights, reward_ranges, weighted_total

__all__ = ["SIGNAL_REQUEST_KEY", "SIGNALS_RECORD_KEY", "plan_signal"]

HISTORY_KEY = "fgrpo-baselines"  # in context.state (baseline_at = "client")
TaskMeans = dict[str, tuple[float, int]]  # task -> (mean total reward, rollouts or probe rows)


def per_task_means(tasks: list[str], totals: list[float | None]) -> TaskMeans:
    """Mean total reward and count per task label; unscored rows (None) are left out."""
    by_task: dict[str, list[float]] = defaultdict(list)
    for task, total in zip(tasks, totals, strict=True):
        if total is not None:
            by_task[task].append(total)
    return {task: (fmean(values), len(values)) for task, values in by_task.items()}


class RolloutRecorder:
    """Wraps TRL reward functions to record (local step, task, total reward) per rollout.

    TRL calls the functions in order on the same batch; when the last one returns, the
    batch's totals (the sum of the functions that scored a row, each times its ``weights``
    entry, 1 when None: ``weighted_total``, as TRL trains on it) are recorded.
    """

    def __init__(self, reward_funcs: list[Any], skip_steps: int, weights: list[float] | None = None) -> None:
        self.skip_steps = skip_steps
        self.weights = weights or [1.0] * len(reward_funcs)
        self.rollouts: list[tuple[int, str, float]] = []
        self._batch: list[list[float | None]] = []
        self.reward_funcs = [self._wrap(i, fn, len(reward_funcs)) for i, fn in enumerate(reward_funcs)]

    def _wrap(self, index: int, fn: Any, count: int) -> Any:
        @functools.wraps(fn)  # keeps the name TRL logs the function's mean under
        def reward(*args: Any, **kwargs: Any) -> list[float | None]:
            values = list(fn(*args, **kwargs))
            self._batch = [values] if index == 0 else [*self._batch, values]
            if index == count - 1:
                self._record(kwargs)
            return values

        return reward

    def _record(self, kwargs: dict[str, Any]) -> None:
        state = kwargs.get("trainer_state")
        step = int(state.global_step) if state is not None else 0
        n = len(self._batch[0])
        tasks = kwargs.get("task") or ["all"] * n
        for task, per_row in zip(tasks, zip(*self._batch, strict=True), strict=True):
            total = weighted_total(per_row, self.weights)
            if total is not None:
                self.rollouts.append((step, str(task), total))

    def signals(self) -> TaskMeans:
        """Per-task means over the counted steps; the last local step always counts."""
        if not self.rollouts:
            raise RuntimeError("GRPO training scored no rollout; no FGRPO signal to report")
        skip = min(self.skip_steps, max(step for step, _, _ in self.rollouts))
        kept = [(task, total) for step, task, total in self.rollouts if step >= skip]
        return per_task_means([t for t, _ in kept], [r for _, r in kept])


def probe_quotas(task_counts: dict[str, int], take: int) -> dict[str, int]:
    """Probe rows per task: one for every task that has two rows or more (when ``take`` allows),
    the rest in proportion to the partition's task mix, never more than half of a task's rows."""
    quota = {task: 0 for task in task_counts}
    eligible = sorted((t for t, c in task_counts.items() if c >= 2), key=lambda t: (-task_counts[t], t))
    for task in eligible[:take]:
        quota[task] = 1
    total = sum(task_counts.values())
    for _ in range(take - sum(quota.values())):
        open_tasks = [t for t in eligible if quota[t] < task_counts[t] // 2]
        if not open_tasks:
            break
        # the task furthest below its proportional share takes the next row
        task = max(open_tasks, key=lambda t: (take * task_counts[t] / total - quota[t], t))
        quota[task] += 1
    return quota


def split_probe(dataset: Dataset, size: int, seed: int) -> tuple[Dataset, Dataset]:
    """(training rows, probe rows): a fixed probe carved from the client's partition.

    Up to ``size`` rows and at most half the partition, stratified by task label
    (``probe_quotas``) so the probe mirrors what the client trains on and every task it holds
    is probed when the size allows. Deterministic in the partition and ``seed``, so the probe
    is the same prompts every round.
    """
    take = min(size, len(dataset) // 2)
    if take == 0:
        raise ConfigError("strategy.probe_size", f"a partition of {len(dataset)} row(s) is too small to carve a probe")
    rng = random.Random(seed)
    by_task: dict[str, list[int]] = defaultdict(list)
    for i, task in enumerate(dataset["task"]):
        by_task[task].append(i)
    quotas = probe_quotas({task: len(rows) for task, rows in by_task.items()}, take)
    chosen = {i for task, rows in sorted(by_task.items()) for i in rng.sample(rows, quotas[task])}
    return dataset.select([i for i in range(len(dataset)) if i not in chosen]), dataset.select(sorted(chosen))


@dataclasses.dataclass(frozen=True)
class ProbeSampling:
    samples: int = 0  # 0: greedy
    temperature: float = 1.0
    seed: int = 0  # the same every call: common random numbers before and after training


def probe_signals(model: Any, tokenizer: Any, probe: Dataset, reward_funcs: list[Any], max_new_tokens: int,
                  sampling: ProbeSampling = ProbeSampling()) -> TaskMeans:
    rows = list(probe)  # decoded: images as PIL images, as the model reads them
    with torch.random.fork_rng(devices=[]):  # leaves the training RNG where it was
        torch.manual_seed(sampling.seed)
        totals = completion_rewards(model, tokenizer, rows, reward_funcs, max_new_tokens,
                                    sampling.samples, sampling.temperature)
    per_row = max(1, sampling.samples)
    means = per_task_means([r["task"] for r in rows for _ in range(per_row)], totals)
    if not means:
        raise ValueError("no reward function scored any probe row; check the data sources' rewards")
    return means


def task_signal_map(cfg: Config, after: TaskMeans, before: TaskMeans | None) -> dict[str, TaskSignal]:
    ranges = reward_ranges(cfg)
    unknown = (float("nan"), float("nan"))  # only the range/zscore/delta gains need it; they refuse NaN
    return {
        task: TaskSignal(p=p, n=n, r_min=ranges.get(task, unknown)[0], r_max=ranges.get(task, unknown)[1],
                         p_before=before[task][0] if before and task in before else None)
        for task, (p, n) in after.items()
    }


def client_side_gain(state: RecordDict, signals: dict[str, TaskSignal], cfg: Config) -> float:
    """g_k from the history this client keeps in its own state, which it then updates."""
    params = fgrpo_params(cfg)
    record = state.config_records.get(HISTORY_KEY)
    history = {t: TaskHistory(**h) for t, h in json.loads(str(record["json"])).items()} if record else {}
    g, _ = client_gain(signals, history, params)
    updated = update_histories(history, signals, params)
    state[HISTORY_KEY] = ConfigRecord({"json": json.dumps({t: dataclasses.asdict(h) for t, h in updated.items()})})
    return g


def signal_metrics(cfg: Config, state: RecordDict, after: TaskMeans, before: TaskMeans | None) -> dict[str, float]:
    """What the reply carries for FGRPO: per-task signals, or only g_k with client-side baselines."""
    if cfg.strategy.baseline_at == "client":
        return {GAIN_KEY: client_side_gain(state, task_signal_map(cfg, after, before), cfg)}
    return task_metrics(after, before)


@dataclasses.dataclass
class SignalPlan:
    """The rows and reward functions to train with, and the reply's FGRPO record afterwards."""

    dataset: Dataset
    reward_funcs: list[Any]
    measure: Callable[[], dict[str, float]] | None = None  # None: the server asked for no signal


def plan_signal(
    request: str | None, cfg: Config, partition_id: int, dataset: Dataset, reward_funcs: list[Any],
    model_and_tokenizer: tuple[Any, Any], state: RecordDict,
) -> SignalPlan:
    """Prepare this round's FGRPO signal (``request``: the signal the server asked for, or None)."""
    if request == "train-reward":
        recorder = RolloutRecorder(reward_funcs, cfg.strategy.signal_skip_steps, function_weights(cfg))
        return SignalPlan(dataset, recorder.reward_funcs,
                          lambda: signal_metrics(cfg, state, recorder.signals(), None))
    if request == "probe":  # the seed does not depend on the round: the same probe every round
        seed = cfg.seed * 1_000_003 + partition_id
        train_rows, probe = split_probe(dataset, cfg.strategy.probe_size, seed=seed)
        sampling = ProbeSampling(cfg.strategy.probe_samples, cfg.strategy.probe_temperature, seed)
        score = functools.partial(probe_signals, *model_and_tokenizer, probe, reward_funcs, cfg.eval.max_new_tokens, sampling)
        before = score() if cfg.strategy.gain == "delta" else None  # on the received global model
        return SignalPlan(train_rows, reward_funcs, lambda: signal_metrics(cfg, state, score(), before))
    return SignalPlan(dataset, reward_funcs)
