"""Reward functions with TRL's signature built from the task suite and the data sources."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .base import ANSWER_TAG, completion_text
from .registry import TASKS

if TYPE_CHECKING:
    from ..config import Config

RewardFn = Callable[..., list[float | None]]


def task_reward(scales: dict[str, float] | None = None) -> RewardFn:
    """One reward function for a mixed-task dataset: each row is scored by its own task.

    ``scales`` multiplies a task's native reward (the reward-scale heterogeneity knob).
    Rows of data sources get None: their own reward functions score them.
    """
    scales = dict(scales or {})

    def reward(completions: list[Any], answer: list[str], task: list[str], **_: Any) -> list[float | None]:
        return [
            TASKS[t].score(completion_text(c), a) * scales.get(t, 1.0) if t in TASKS else None
            for c, a, t in zip(completions, answer, task, strict=True)
        ]

    reward.__name__ = "task_reward"
    return reward


def format_reward(weight: float) -> RewardFn:
    """``weight`` when the completion carries exactly one <answer> tag, else 0."""

    def reward(completions: list[Any], **_: Any) -> list[float]:
        return [weight if len(ANSWER_TAG.findall(completion_text(c))) == 1 else 0.0 for c in completions]

    reward.__name__ = "format_reward"
    return reward


def scaled_range(name: str, scales: dict[str, float]) -> tuple[float, float]:
    """A procedural task's reward range after ``data.reward_scale``."""
    low, high = TASKS[name].reward_range
    scale = scales.get(name, 1.0)
    return low * scale, high * scale


def reward_ranges(cfg: "Config") -> dict[str, tuple[float, float]]:
    """Each task label's declared range of the *total* reward a completion can get.

    Procedural tasks: ``Task.reward_range`` times ``data.reward_scale``; data sources: their
    ``reward_min``/``reward_max`` (default [0, 1], the accuracy reward) times the scale; the
    optional format reward widens every range by its weight. FGRPO's ``range`` gain divides by it.
    """
    ranges = {name: scaled_range(name, cfg.data.reward_scale) for name in cfg.data.tasks}
    for source in cfg.data.sources:
        scale = cfg.data.reward_scale.get(source.name, 1.0)
        ranges[source.name] = (source.reward_min * scale, source.reward_max * scale)
    return {name: (low, high + cfg.data.format_reward) for name, (low, high) in ranges.items()}


def reward_functions(cfg: "Config") -> list[RewardFn]:
    """The reward functions a client trains with, in TRL's ``reward_funcs`` order.

    The procedural tasks' reward comes first (when there are procedural tasks), then the
    optional format reward, then each data source's functions (in config order).
    """
    from .source_rewards import source_reward_functions

    funcs: list[RewardFn] = []
    if cfg.data.tasks:
        funcs.append(task_reward(cfg.data.reward_scale))
    if cfg.data.format_reward > 0:
        funcs.append(format_reward(cfg.data.format_reward))
    for source in cfg.data.sources:
        funcs.extend(source_reward_functions(source, cfg.data.reward_scale.get(source.name, 1.0)))
    return funcs
