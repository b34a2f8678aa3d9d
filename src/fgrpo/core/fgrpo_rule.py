"""The FGRPO weighting rule as pure functions (docs/design.md, "The FGRPO rule").

Round t, sampled clients S_t, client k, task labels τ in k's data. Client k reports
p_{k,τ}, its performance signal on τ, over n_{k,τ} rollouts (or probe rows);
b_{k,τ} is the EMA of its past p_{k,τ}; [r_min, r_max] is τ's declared reward range.

    g_{k,τ} = gain(p_{k,τ}, b_{k,τ})                  (first report: b := p, g := 0)
    g_k     = clip(Σ_τ n_{k,τ} g_{k,τ} / Σ_τ n_{k,τ}, −g_max, g_max)
    w_k     = n_k^γ · exp(g_k / τ_temp), normalised over S_t; optional floor w_min/|S_t|
    b_{k,τ} ← β · b_{k,τ} + (1 − β) · p_{k,τ}         (after aggregating)

gain modes:
    range       (p − b) / (r_max − r_min)                       shift- and scale-invariant
    ratio       (p − b) / max(|b|, ε · (r_max − r_min))         scale-invariant; the range-aware floor
                                                                bounds it where b nears 0
    zscore      (p − b) / max(s, s_min · (r_max − r_min))       s: bias-corrected EMA of past |p − b|;
                                                                0 until a (client, task) has warmup_reports
                                                                reports, this one included
    difference  p − b                                           scale-sensitive reference
    delta       (p_after − p_before) / (r_max − r_min)          this round's own probe improvement

Keeping the signal per task is what makes g_k move with learning rather than with which
tasks a client's batch happened to draw. ``delta`` is divided by the range, like ``range``,
so that tasks on different scales average fairly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fgrpo.core.config import Config

from dataclasses import dataclass

import numpy as np

GAIN_MODES = ("range", "ratio", "zscore", "difference", "delta")


@dataclass(frozen=True)
class FgrpoParams:
    gain_mode: str = "ratio"
    beta: float = 0.8
    tau: float = 0.3
    gamma: float = 1.0
    g_max: float = 5.0
    floor: float = 0.0
    eps: float = 0.1  # ratio's floor of |b|, as a fraction of the task's reward range
    spread_floor: float = 0.05  # s_min of zscore, as a fraction of the task's reward range
    warmup_reports: int = 3  # zscore: the first report (of a client, task) whose gain counts


@dataclass(frozen=True)
class TaskSignal:
    """p_{k,τ} over n_{k,τ} rollouts, τ's reward range, and (delta) p on the received model."""

    p: float
    n: float
    r_min: float = 0.0
    r_max: float = 1.0
    p_before: float | None = None

    @property
    def width(self) -> float:
        return self.r_max - self.r_min


@dataclass
class TaskHistory:
    """What is remembered about one (client, task) between rounds."""

    baseline: float
    spread: float = 0.0  # EMA of |p - b| started at 0; divided by (1 - beta^m) when read
    reports: int = 1


def task_gain(
    signal: TaskSignal, history: TaskHistory | None, params: FgrpoParams
) -> tuple[float, float]:
    """Return (g_{k,τ}, the baseline it was measured against), unclipped.

    Divisors are guarded with max(.) rather than by adding a constant, and ``ratio``'s floor is
    a fraction of the task's reward range: both keep it exactly scale-invariant, and the floor
    keeps one probe row flipping at b = 0 from handing a client all the weight (an absolute
    epsilon made that gain (1/n) / 1e-6).
    """
    if (
        params.gain_mode != "difference" and not signal.width > 0
    ):  # NaN: a task without a declared range
        raise ValueError(
            f"the {params.gain_mode} gain needs the task's declared reward range, got "
            f"[{signal.r_min}, {signal.r_max}]"
        )
    if params.gain_mode == "delta":
        if signal.p_before is None:
            raise ValueError("the delta gain needs the probe measured on the received global model")
        return (signal.p - signal.p_before) / signal.width, signal.p_before
    if history is None:
        return 0.0, signal.p
    b = history.baseline
    deviation = signal.p - b
    if params.gain_mode == "range":
        return deviation / signal.width, b
    if params.gain_mode == "ratio":
        return deviation / max(abs(b), params.eps * signal.width), b
    if params.gain_mode == "difference":
        return deviation, b
    if params.gain_mode == "zscore":
        if history.reports + 1 < params.warmup_reports:  # history.reports counts the past ones
            return 0.0, b
        deviations_seen = history.reports - 1
        correction = 1.0 - params.beta**deviations_seen
        spread = history.spread / correction if correction > 0 else 0.0
        return deviation / max(spread, params.spread_floor * signal.width, 1e-12), b
    raise ValueError(f"unknown gain mode {params.gain_mode!r}")


def client_gain(
    signals: dict[str, TaskSignal], history: dict[str, TaskHistory], params: FgrpoParams
) -> tuple[float, dict[str, tuple[float, float]]]:
    """g_k, the rollout-weighted mean of per-task gains, clipped; and {task: (g_{k,τ}, b_{k,τ})}."""
    counted = {task: s for task, s in signals.items() if s.n > 0}
    if not counted:
        raise ValueError("no task signal with any rollouts")
    per_task = {task: task_gain(s, history.get(task), params) for task, s in counted.items()}
    total = sum(s.n for s in counted.values())
    g = sum(counted[task].n * gain for task, (gain, _) in per_task.items()) / total
    return float(np.clip(g, -params.g_max, params.g_max)), per_task


def update_history(history: TaskHistory | None, p: float, params: FgrpoParams) -> TaskHistory:
    if history is None:
        return TaskHistory(baseline=p)
    return TaskHistory(
        baseline=params.beta * history.baseline + (1.0 - params.beta) * p,
        spread=params.beta * history.spread + (1.0 - params.beta) * abs(p - history.baseline),
        reports=history.reports + 1,
    )


def update_histories(
    history: dict[str, TaskHistory], signals: dict[str, TaskSignal], params: FgrpoParams
) -> dict[str, TaskHistory]:
    """One client's per-task baselines after a round (tasks without rollouts keep theirs)."""
    updated = dict(history)
    for task, s in signals.items():
        if s.n > 0:
            updated[task] = update_history(history.get(task), s.p, params)
    return updated


def fgrpo_weights(num_examples: list[float], gains: list[float], params: FgrpoParams) -> np.ndarray:
    """Normalised weights n^gamma * exp(g / tau), computed in log space for stability."""
    n = np.asarray(num_examples, dtype=np.float64)
    g = np.asarray(gains, dtype=np.float64)
    if n.size == 0:
        return n
    if np.any(n <= 0):
        raise ValueError("every client must report num-examples > 0")
    logits = params.gamma * np.log(n) + g / params.tau
    weights = np.exp(logits - logits.max())
    weights /= weights.sum()
    if params.floor > 0:
        weights = np.maximum(weights, params.floor / n.size)
        weights /= weights.sum()
    return weights


def fgrpo_params(cfg: Config) -> FgrpoParams:
    s = cfg.strategy
    return FgrpoParams(
        gain_mode=s.gain,
        beta=s.beta,
        tau=s.tau,
        gamma=s.gamma,
        g_max=s.g_max,
        floor=s.floor,
        eps=s.eps,
        spread_floor=s.spread_floor,
        warmup_reports=s.warmup_reports,
    )
