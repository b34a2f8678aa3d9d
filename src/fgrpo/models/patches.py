"""Undo what a trainer patches onto a long-lived model.

TRL's ``GRPOTrainer`` constructor patches the model it is given: it rebinds the base
model's ``forward`` to a fused LM-head wrapper around the current ``forward`` and,
with gradient checkpointing, adds an input-embedding hook. The client's model is cached
for the whole process and a trainer is built every round, so without undoing these a
worker's forward grows one wrapper frame and more hooks per hosted round until it hits
``RecursionError``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch

# Hook tables keyed by handle id; the *_with_kwargs / *_always_called tables share those ids.
HOOK_TABLES = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
SIDE_TABLES = (
    "_forward_hooks_with_kwargs",
    "_forward_hooks_always_called",
    "_forward_pre_hooks_with_kwargs",
)
_ABSENT = object()


@contextmanager
def restored_after(model: torch.nn.Module) -> Iterator[None]:
    """On exit, every module's instance ``forward`` and hook tables are as they were on entry."""
    before = [
        (
            module,
            module.__dict__.get("forward", _ABSENT),
            {t: set(getattr(module, t)) for t in HOOK_TABLES},
        )
        for module in model.modules()
    ]
    try:
        yield
    finally:
        for module, forward, hooks in before:
            if forward is _ABSENT:
                module.__dict__.pop("forward", None)
            else:
                module.__dict__["forward"] = forward
            for table, kept in hooks.items():
                for hook_id in [h for h in getattr(module, table) if h not in kept]:
                    getattr(module, table).pop(hook_id)
                    for side in SIDE_TABLES:
                        getattr(module, side, {}).pop(hook_id, None)


@contextmanager
def generate_wrapped(
    model: torch.nn.Module, wrap: Callable[[Callable[..., Any]], Callable[..., Any]]
) -> Iterator[None]:
    """While the block runs, ``model.generate`` is ``wrap(model.generate)``; then what it was
    (wrappers nest: each exit restores the one before)."""
    before = model.__dict__.get("generate", _ABSENT)
    model.__dict__["generate"] = wrap(model.generate)
    try:
        yield
    finally:
        if before is _ABSENT:
            model.__dict__.pop("generate", None)
        else:
            model.__dict__["generate"] = before
