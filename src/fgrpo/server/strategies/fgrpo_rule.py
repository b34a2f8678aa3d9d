"""The FGRPO weighting rule as pure functions (see README, "FGRPO aggregation").

Round t, sampled clients S_t, client k with performance signal p_k and
personalised baseline b_k (EMA of its past p_k):

    g_k = clip(gain(p_k, b_k), -g_max, g_max)
    w_k = n_k^gamma * exp(g_k / tau), normalised over S_t, optional floor w_min/|S_t|
    b_k <- beta * b_k + (1 - beta) * p_k          (after aggregating)

On a client's first report b_k := p_k and g_k := 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FgrpoParams:
    gain_mode: str = "ratio"  # ratio | zscore | difference
    beta: float = 0.8
    tau: float = 1.0
    gamma: float = 1.0
    g_max: float = 5.0
    floor: float = 0.0
    eps: float = 1e-6


@dataclass
class ClientHistory:
    """What the server remembers about one client between rounds."""

    baseline: float
    spread: float = 0.0  # EMA of |p - b|, the zscore mode's scale
    reports: int = 1


def relative_gain(signal: float, history: ClientHistory | None, params: FgrpoParams) -> tuple[float, float]:
    """Return (gain, baseline used). A first report has gain 0 and baseline = signal.

    ``zscore`` folds the current deviation into the spread before dividing, so the
    gain is bounded by 1 / (1 - beta). Both ``ratio`` and ``zscore`` guard the
    divisor with max(., eps) rather than adding eps, which keeps them exactly
    invariant to a client's reward scale whenever the divisor exceeds eps.
    """
    if history is None:
        return 0.0, signal
    deviation = signal - history.baseline
    if params.gain_mode == "ratio":
        gain = deviation / max(abs(history.baseline), params.eps)
    elif params.gain_mode == "zscore":
        spread = params.beta * history.spread + (1.0 - params.beta) * abs(deviation)
        gain = deviation / max(spread, params.eps)
    elif params.gain_mode == "difference":
        gain = deviation
    else:
        raise ValueError(f"unknown gain mode {params.gain_mode!r}")
    return float(np.clip(gain, -params.g_max, params.g_max)), history.baseline


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


def update_history(history: ClientHistory | None, signal: float, params: FgrpoParams) -> ClientHistory:
    if history is None:
        return ClientHistory(baseline=signal)
    deviation = abs(signal - history.baseline)
    return ClientHistory(
        baseline=params.beta * history.baseline + (1.0 - params.beta) * signal,
        spread=params.beta * history.spread + (1.0 - params.beta) * deviation,
        reports=history.reports + 1,
    )
