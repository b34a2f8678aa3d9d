"""Clipping an adapter update to a norm, as Flower's fixed-clipping DP does (numpy only: the config
checks and the DP wrappers use it without loading torch)."""

from __future__ import annotations

import numpy as np
from flwr.app import Array, ArrayRecord
from flwr.supercore.differential_privacy import compute_clip_model_update


def clip_update(new: ArrayRecord, sent: ArrayRecord, norm: float) -> ArrayRecord:
    """``new`` moved towards ``sent`` so that ‖new − sent‖ ≤ ``norm`` (Flower's flat clip)."""
    if list(new.keys()) != list(sent.keys()):
        raise ValueError("the update's tensors are not the ones sent; cannot clip it")
    arrays, base = new.to_numpy_ndarrays(), sent.to_numpy_ndarrays()
    if any(np.any(a != b) for a, b in zip(arrays, base, strict=True)):
        compute_clip_model_update(arrays, base, norm)
    return ArrayRecord({k: Array(np.asarray(a)) for k, a in zip(new.keys(), arrays, strict=True)})
