"""The client's half of FGRPO: per-task performance signals and (optionally) its own baselines.

- ``train-reward``: ``RolloutRecorder`` wraps the reward functions handed to TRL, so every
  rollout's task label and total reward are known; the first ``strategy.signal_skip_steps``
  local steps are left out because they sample the received global model, which is the same
  for every client and says nothing about this client's update.
- ``probe``: the client's fixed probe (fgrpo.data.probe_rows: beside its training rows, never trained
  on, the same prompts every round, whatever the strategy); ``probe_signals`` scores greedy
  answers on it per task, or
  ``strategy.probe_samples`` sampled answers per row drawn with the same random numbers every
  time it is called, so before/after differences measure the model, not the draw.
- ``strategy.baseline_at = "client"``: ``client_side_gain`` keeps the per-task history in the
  Flower ``context.state`` and only g_k leaves the client.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections import defaultdict
from collections.abc import Callable
from statistics import fmean
from typing import Any

import torch
from datasets import Dataset
from flwr.app import ConfigRecord, RecordDict

from fgrpo.core.config import Config
from fgrpo.core.errors import ConfigError
from fgrpo.core.fgrpo_rule import (
    TaskHistory,
    TaskSignal,
    client_gain,
    fgrpo_params,
    update_histories,
)
from fgrpo.core.protocol import GAIN_KEY, SIGNAL_REQUEST_KEY, SIGNALS_RECORD_KEY, task_metrics
from fgrpo.data.probe_rows import ClientRows
from fgrpo.models.evaluation import completion_rewards
from fgrpo.tasks.rewards import function_weights, reward_ranges, weighted_total

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

    def __init__(
        self, reward_funcs: list[Any], skip_steps: int, weights: list[float] | None = None
    ) -> None:
        self.skip_steps = skip_steps
        self.weights = weights or [1.0] * len(reward_funcs)
        self.rollouts: list[tuple[int, str, float]] = []
        self._batch: list[list[float | None]] = []
        self.reward_funcs = [
            self._wrap(i, fn, len(reward_funcs)) for i, fn in enumerate(reward_funcs)
        ]

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


@dataclasses.dataclass(frozen=True)
class ProbeSampling:
    samples: int = 0  # 0: greedy
    temperature: float = 1.0
    seed: int = 0  # the same every call: common random numbers before and after training


def probe_signals(
    model: Any,
    tokenizer: Any,
    probe: list[dict[str, Any]],
    reward_funcs: list[Any],
    max_new_tokens: int,
    sampling: ProbeSampling = ProbeSampling(),
    weights: list[float] | None = None,
) -> TaskMeans:
    """Per-task mean total reward (weighted as TRL trains on it) of the model's answers on the
    probe."""
    rows = probe
    device = next(model.parameters()).device
    cuda = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(
        devices=cuda
    ):  # leaves the training RNG (CPU and the model's GPU) where it was
        torch.manual_seed(sampling.seed)
        totals = completion_rewards(
            model,
            tokenizer,
            rows,
            reward_funcs,
            max_new_tokens,
            sampling.samples,
            sampling.temperature,
            weights=weights,
        )
    per_row = max(1, sampling.samples)
    means = per_task_means([r["task"] for r in rows for _ in range(per_row)], totals)
    if not means:
        raise ValueError("no reward function scored any probe row; check the data sources' rewards")
    return means


def task_signal_map(
    cfg: Config, after: TaskMeans, before: TaskMeans | None
) -> dict[str, TaskSignal]:
    ranges = reward_ranges(cfg)
    unknown = (
        float("nan"),
        float("nan"),
    )  # only the range/zscore/delta gains need it; they refuse NaN
    return {
        task: TaskSignal(
            p=p,
            n=n,
            r_min=ranges.get(task, unknown)[0],
            r_max=ranges.get(task, unknown)[1],
            p_before=before[task][0] if before and task in before else None,
        )
        for task, (p, n) in after.items()
    }


def client_side_gain(state: RecordDict, signals: dict[str, TaskSignal], cfg: Config) -> float:
    """g_k from the history this client keeps in its own state, which it then updates."""
    params = fgrpo_params(cfg)
    record = state.config_records.get(HISTORY_KEY)
    history = (
        {t: TaskHistory(**h) for t, h in json.loads(str(record["json"])).items()} if record else {}
    )
    g, _ = client_gain(signals, history, params)
    updated = update_histories(history, signals, params)
    state[HISTORY_KEY] = ConfigRecord(
        {"json": json.dumps({t: dataclasses.asdict(h) for t, h in updated.items()})}
    )
    return g


def signal_metrics(
    cfg: Config, state: RecordDict, after: TaskMeans, before: TaskMeans | None
) -> dict[str, float]:
    """What the reply carries for FGRPO: per-task signals, or only g_k with client-side
    baselines."""
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
    request: str | None,
    cfg: Config,
    partition_id: int,
    rows: ClientRows,
    reward_funcs: list[Any],
    model_and_tokenizer: tuple[Any, Any],
    state: RecordDict,
) -> SignalPlan:
    """Prepare this round's FGRPO signal (``request``: the signal the server asked for, or None).

    The client trains on ``rows.train`` whatever is asked: the probe lies beside it."""
    if request == "train-reward":
        recorder = RolloutRecorder(
            reward_funcs, cfg.strategy.signal_skip_steps, function_weights(cfg)
        )
        return SignalPlan(
            rows.train,
            recorder.reward_funcs,
            lambda: signal_metrics(cfg, state, recorder.signals(), None),
        )
    if request == "probe":  # the seed does not depend on the round: the same draws every round
        if not rows.probe:
            raise ConfigError(
                "data.probe_size",
                "the probe signal needs probe rows: this client has none "
                "(data.probe_size = 0, or a data source with a single row of each task)",
            )
        sampling = ProbeSampling(
            cfg.strategy.probe_samples,
            cfg.strategy.probe_temperature,
            cfg.seed * 1_000_003 + partition_id,
        )
        score = functools.partial(
            probe_signals,
            *model_and_tokenizer,
            rows.probe,
            reward_funcs,
            cfg.eval.max_new_tokens,
            sampling,
            function_weights(cfg),
        )
        before = score() if cfg.strategy.gain == "delta" else None  # on the received global model
        return SignalPlan(
            rows.train, reward_funcs, lambda: signal_metrics(cfg, state, score(), before)
        )
    return SignalPlan(rows.train, reward_funcs)
