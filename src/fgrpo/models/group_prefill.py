"""Sampling a GRPO group's completions with the prompt's work done once per group.

TRL repeats each prompt ``num_generations`` times and hands the batch to ``model.generate``, which
runs every copy of the prompt through the model. The copies are identical, so are their keys and
values: this wraps ``generate`` to run each distinct prompt once (all but its last token), copy its
cache ``G`` times, and let ``generate`` go on from there. The rows, their positions and the sampling
are those ``generate`` would use on its own; only the prompt's arithmetic shrinks ``G``-fold.

Anything else (multimodal inputs, a batch without repeated rows, a model without a cache) goes to
``generate`` unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import torch
from transformers import GenerationConfig

from fgrpo.models.patches import generate_wrapped

_INPUTS = {"input_ids", "attention_mask"}
# generation settings that leave one output row per input row (beams or extra samples per row
# would expand the batch after the cache is built)
_SETTINGS = set(GenerationConfig().to_dict()) | {"generation_config"}


def group_size(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> int:
    """The size of the runs of identical consecutive rows the batch is made of (1: none)."""
    rows = torch.cat([input_ids, attention_mask.to(input_ids.dtype)], dim=1)
    same = (rows[1:] == rows[:-1]).all(dim=1).tolist()
    size = next((i + 1 for i, s in enumerate(same) if not s), len(rows))
    if size == 1 or len(rows) % size:
        return 1
    groups = rows.view(len(rows) // size, size, -1)
    return size if bool((groups == groups[:, :1]).all()) else 1


def prompt_cache(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, copies: int):
    """The key/value cache of ``input_ids`` (left-padded) with each row repeated ``copies`` times,
    at the positions ``generate`` gives them (counted over the unpadded tokens)."""
    positions = (attention_mask.long().cumsum(-1) - 1).masked_fill(attention_mask == 0, 0)
    with torch.no_grad():
        out = model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=positions,
            use_cache=True,
            logits_to_keep=1,  # the prompt's logits are not needed: generate computes the last's
        )
    cache = out.cache
    cache.batch_repeat_interleave(copies)
    return cache


def _shareable(model: Any, kwargs: dict[str, Any]) -> bool:
    if not _INPUTS <= set(kwargs) <= _INPUTS | _SETTINGS or kwargs["input_ids"].size(1) < 2:
        return False
    settings = kwargs.get("generation_config") or model.generation_config
    one_row_each = all(
        kwargs.get(key, getattr(settings, key, 1) or 1) == 1
        for key in ("num_beams", "num_return_sequences")
    )
    return one_row_each and bool(getattr(settings, "use_cache", True))


def _shared(model: Any, original: Any, kwargs: dict[str, Any]) -> Any:
    ids, mask = kwargs["input_ids"], kwargs["attention_mask"]
    size = group_size(ids, mask)
    if size == 1:
        return original(**kwargs)
    cache = prompt_cache(model, ids[::size, :-1], mask[::size, :-1], size)
    return original(**kwargs, cache=cache)


def group_prefill(model: torch.nn.Module) -> AbstractContextManager[None]:
    """While the block runs, ``model.generate`` computes each group's prompt once (see above)."""

    def wrap(original: Callable[..., Any]) -> Callable[..., Any]:
        def generate(*args: Any, **kwargs: Any) -> Any:
            return (
                _shared(model, original, kwargs)
                if not args and _shareable(model, kwargs)
                else original(*args, **kwargs)
            )

        return generate

    return generate_wrapped(model, wrap)
