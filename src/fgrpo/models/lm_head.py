"""TRL's fused LM head, made to score only the completion's positions on a CPU too.

GRPOTrainer (TRL 1.16) patches the model with a chunked log-prob head. On a GPU with Triton it
projects only the positions that have a label (the completion's); elsewhere it projects every
position, prompt included, so that Neuron-like compilers see fixed tile shapes, and masks the
prompt's log-probs to zero afterwards. A CPU compiles nothing, so that only costs arithmetic: the
LM head (SmolLM2's is 49152 x 576, a fifth of the model's multiply-adds per token) runs over three
times the rows it needs in the forward pass and again in the backward's recomputation. The rows
kept give the same log-probs either way (tests/unit/test_prompt_work.py).
"""

from __future__ import annotations

from typing import Any

import torch
import trl.trainer.utils as trl_utils

_COMPACT_DEVICES = ("cpu",)


def score_completions_only() -> None:
    """Make TRL's fused LM head project only labelled positions on a CPU as well (idempotent)."""
    decide = trl_utils._use_triton  # what the head asks to choose compact scoring, nothing else
    if getattr(decide, "fgrpo_compact", False):
        return

    def compact(device: torch.device) -> bool:
        return device.type in _COMPACT_DEVICES or decide(device)

    compact.fgrpo_compact = True  # type: ignore[attr-defined]
    trl_utils._use_triton = compact


def compact_scoring_on(device: Any) -> bool:
    """Whether TRL's fused head scores only the labelled positions on ``device`` now."""
    return bool(trl_utils._use_triton(torch.device(device)))
