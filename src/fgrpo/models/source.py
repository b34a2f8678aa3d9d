"""Where a base model comes from, and loading one from a directory or a hub id."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    ProcessorMixin,
)

from fgrpo.models.vision import is_vision_config, load_vision_model


@dataclass(frozen=True)
class ModelSource:
    name: str
    kind: str  # "shipped", "random", "gguf", "hub-or-path"
    location: str
    available: bool


def from_directory(
    path: str | Path, dtype: str = "float32"
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase | ProcessorMixin]:
    """A model directory or hub id: a vision-language one with its processor, else a causal LM."""
    if is_vision_config(path):
        return load_vision_model(path, dtype)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype))
    return model, tokenizer


def text_tokenizer(
    processing_class: PreTrainedTokenizerBase | ProcessorMixin,
) -> PreTrainedTokenizerBase:
    """The tokenizer itself, or a vision-language processor's tokenizer."""
    return getattr(processing_class, "tokenizer", processing_class)
