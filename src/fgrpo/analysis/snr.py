"""The signal-to-noise FGRPO's per-round gain needs for the null and stalled-client thresholds
(benchmarks/fgrpo_snr.py has the model in full)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

CLIENTS, ROUNDS, DRAWS = 4, 8, 4000
TV_MEDIAN, TV_MAX, STALLED_RATIO = 0.05, 0.15, 0.5


def weights(gains: np.ndarray, tau: float) -> np.ndarray:
    z = gains / tau
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def meets(snr: float, tau: float, rng: np.random.Generator) -> bool:
    """Whether gains of signal-to-noise ``snr`` meet every threshold at ``tau`` (σ = 1)."""
    iid = weights(snr + rng.standard_normal((DRAWS, ROUNDS, CLIENTS)), tau)
    tv = 0.5 * np.abs(iid - 1 / CLIENTS).sum(axis=-1)
    learners = snr + rng.standard_normal((DRAWS, CLIENTS - 1))
    stalled = weights(np.concatenate([np.zeros((DRAWS, 1)), learners], axis=1), tau)[:, 0]
    return bool(
        np.median(tv) <= TV_MEDIAN
        and np.median(tv.max(axis=1)) <= TV_MAX
        and stalled.mean() * CLIENTS <= STALLED_RATIO
    )


def needed_snr(seed: int = 0) -> dict[str, float]:
    """The smallest signal-to-noise (grid of 0.1) at which some τ (σ units) meets every
    threshold."""
    taus = np.geomspace(0.05, 50, 120)
    for snr in np.arange(0.1, 30.0, 0.1):
        for tau in taus:
            if meets(float(snr), float(tau), np.random.default_rng(seed)):
                return {"snr": round(float(snr), 1), "tau_in_sigma": round(float(tau), 3)}
    return {"snr": math.inf, "tau_in_sigma": math.nan}


def measured(path: Path) -> dict[str, dict[str, float]]:
    """Per delta mode and client group: mean, sd and mean/sd of the per-round probe gains."""
    doc = json.loads(path.read_text())
    out = {}
    for mode, m in doc["modes"].items():
        for group, g in (m.get("probe_gain_per_round") or {}).items():
            if group == "stalled" or not g["n"] or not g["se"]:
                continue
            sd = g["se"] * math.sqrt(g["n"])
            out[f"{mode} {group}"] = {
                "mean": g["mean"],
                "sd": sd,
                "snr": g["mean"] / sd,
                "n": g["n"],
                "local_steps": doc["setting"]["local_steps"],
            }
    return out
