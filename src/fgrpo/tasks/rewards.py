"""Reward functions with TRL's signature built from the task suite and the data sources."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from fgrpo.core.errors import ConfigError
from fgrpo.tasks.base import ANSWER_TAG, completion_text
from fgrpo.tasks.registry import TASKS
from fgrpo.tasks.source_rewards import source_reward_functions

if TYPE_CHECKING:
    from fgrpo.core.config import Config

RewardFn = Callable[..., list[float | None]]


def task_reward(scales: dict[str, float] | None = None) -> RewardFn:
    """One reward function for a mixed-task dataset: each row is scored by its own task.

    ``scales`` multiplies a task's native reward (the reward-scale heterogeneity knob).
    Rows of data sources get None: their own reward functions score them.
    """
    scales = dict(scales or {})

    def reward(
        completions: list[Any], answer: list[str], task: list[str], **_: Any
    ) -> list[float | None]:
        return [
            TASKS[t].score(completion_text(c), a) * scales.get(t, 1.0) if t in TASKS else None
            for c, a, t in zip(completions, answer, task, strict=True)
        ]

    reward.__name__ = "task_reward"
    return reward


def format_reward(weight: float) -> RewardFn:
    """``weight`` when the completion carries exactly one <answer> tag, else 0."""

    def reward(completions: list[Any], **_: Any) -> list[float]:
        return [
            weight if len(ANSWER_TAG.findall(completion_text(c))) == 1 else 0.0 for c in completions
        ]

    reward.__name__ = "format_reward"
    return reward


def scaled_range(name: str, scales: dict[str, float]) -> tuple[float, float]:
    """A procedural task's reward range after ``data.reward_scale``."""
    low, high = TASKS[name].reward_range
    scale = scales.get(name, 1.0)
    return low * scale, high * scale


def reward_function_names(cfg: Config) -> list[str]:
    """The reward functions ``reward_functions`` builds, by name, in TRL's ``reward_funcs``
    order."""
    names = ["task_reward"] if cfg.data.tasks else []
    names += ["format_reward"] if cfg.data.format_reward > 0 else []
    for source in cfg.data.sources:
        names += source.rewards or [f"{source.checker}-accuracy"]
    return names


def function_weights(cfg: Config) -> list[float]:
    """``grpo.reward_weights``, TRL's weight per reward function (1 each when unset), checked
    against them."""
    names = reward_function_names(cfg)
    weights = cfg.grpo_settings().get("reward_weights")
    if weights is None:
        return [1.0] * len(names)
    numbers = isinstance(weights, list) and all(
        isinstance(w, int | float) and not isinstance(w, bool) and math.isfinite(w) for w in weights
    )
    if not numbers:
        raise ConfigError(
            "grpo.reward_weights", f"expected a list of finite numbers, got {weights!r}"
        )
    if len(weights) != len(names):
        raise ConfigError(
            "grpo.reward_weights",
            f"{len(weights)} weight(s) for {len(names)} reward function(s): {', '.join(names)}",
        )
    return [float(w) for w in weights]


def weighted_total(values: Sequence[float | None], weights: Sequence[float]) -> float | None:
    """A completion's reward as TRL trains on it: Σ_i w_i r_i over the functions that scored it
    (None and NaN skipped, TRL's nansum); None when no function did (TRL's unscorable row)."""
    scored = [
        (w, float(v))
        for v, w in zip(values, weights, strict=True)
        if v is not None and not math.isnan(v)
    ]
    return sum(w * v for w, v in scored) if scored else None


def _weighted(bounds: tuple[float, float], weight: float) -> tuple[float, float]:
    """The range of weight × r for r in bounds: a negative weight swaps the ends."""
    low, high = weight * bounds[0], weight * bounds[1]
    return min(low, high), max(low, high)


def reward_ranges(cfg: Config) -> dict[str, tuple[float, float]]:
    """Each task label's declared range of the *total* reward a completion can get, as TRL weights
    it.

    Procedural tasks: ``Task.reward_range`` times ``data.reward_scale``; data sources: their
    ``reward_min``/``reward_max`` (default [0, 1], the accuracy reward) times the scale; the
    optional format reward widens every range by its weight. Each part enters weighted by its
    function's ``grpo.reward_weights``. FGRPO's ``range`` gain divides by it.
    """
    weights = iter(function_weights(cfg))
    task_weight = next(weights) if cfg.data.tasks else 1.0
    format_weight = next(weights) if cfg.data.format_reward > 0 else 1.0
    ranges = {
        name: _weighted(scaled_range(name, cfg.data.reward_scale), task_weight)
        for name in cfg.data.tasks
    }
    for source in cfg.data.sources:
        own = {next(weights) for _ in source.rewards or [None]}
        if len(own) > 1:  # reward_min/reward_max bound the sum of its functions, not each one
            raise ConfigError(
                "grpo.reward_weights",
                f"data source {source.name!r}'s reward functions need one "
                f"weight (its reward_min/reward_max declare their total), got {sorted(own)}",
            )
        scale = cfg.data.reward_scale.get(source.name, 1.0)
        ranges[source.name] = _weighted(
            (source.reward_min * scale, source.reward_max * scale), own.pop()
        )
    fmt_low, fmt_high = _weighted((0.0, cfg.data.format_reward), format_weight)
    return {name: (low + fmt_low, high + fmt_high) for name, (low, high) in ranges.items()}


def check_reward_weights(cfg: Config) -> None:
    """Refuse ``grpo.reward_weights`` that do not fit the reward functions (before any client
    trains)."""
    reward_ranges(cfg)


def reward_functions(cfg: Config) -> list[RewardFn]:
    """The reward functions a client trains with, in TRL's ``reward_funcs`` order.

    The procedural tasks' reward comes first (when there are procedural tasks), then the
    optional format reward, then each data source's functions (in config order).
    """

    funcs: list[RewardFn] = []
    if cfg.data.tasks:
        funcs.append(task_reward(cfg.data.reward_scale))
    if cfg.data.format_reward > 0:
        funcs.append(format_reward(cfg.data.format_reward))
    for source in cfg.data.sources:
        funcs.extend(source_reward_functions(source, cfg.data.reward_scale.get(source.name, 1.0)))
    return funcs
