"""Where a model runs: a device setting (``eval.device``) resolved against this machine.

``auto`` is the accelerator when there is one (CUDA, else Apple's MPS), else the CPU. The
setting's form is checked with the rest of the config (fgrpo.core.config); whether this machine has
the device is checked where the run starts (fgrpo.runtime.preflight), so a run asking for a missing GPU
stops in one line, not inside Flower.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from fgrpo.core.errors import ConfigError


def resolve_device(setting: str, key: str = "eval.device") -> torch.device:
    """The torch device ``setting`` (a form fgrpo.core.config accepts) names on this machine;
    ConfigError (naming ``key``) if the machine has none."""
    if setting == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("mps" if torch.backends.mps.is_available() else "cpu")
    device = torch.device(setting)
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (device.index or 0) >= count:
            raise ConfigError(
                key,
                f"{setting!r} asked for, but torch sees {count} CUDA device(s) here; use auto or cpu",
            )
        return torch.device(
            "cuda", torch.cuda.current_device() if device.index is None else device.index
        )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(
            key, "'mps' asked for, but this machine has no MPS device; use auto or cpu"
        )
    return device


@contextmanager
def placed_on(model: torch.nn.Module, device: torch.device) -> Iterator[None]:
    """``model`` on ``device`` while the block runs, then back where it was: a trainer holding the
    model (the centralized reference) keeps its optimizer state on the device it trains on."""
    before = next(model.parameters()).device
    model.to(device)
    try:
        yield
    finally:
        model.to(before)
