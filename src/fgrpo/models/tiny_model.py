"""The tiny models: ``tiny`` (the reasoner shipped in this package, built by
fgrpo.models.build_tiny) and ``tiny-random`` (its architecture and tokenizer, random weights)."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedModel, PreTrainedTokenizerBase

from fgrpo.models.source import ModelSource, from_directory
from fgrpo.models.tokenizer import build_char_tokenizer

TINY_DIR = Path(__file__).parent / "tiny"


def tiny_architecture(vocab_size: int, hidden_size: int = 128, layers: int = 4) -> LlamaConfig:
    """A tiny Llama config with a char vocabulary (~1M parameters at the defaults, used by
    ``tiny-random``; the shipped reasoner's own size is in its config.json)."""
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


def random_tiny(seed: int = 0) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    tokenizer = build_char_tokenizer()
    torch.manual_seed(seed)
    model = LlamaForCausalLM(tiny_architecture(len(tokenizer)))
    return model, tokenizer


def load_tiny(dtype: str = "float32") -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    if not (TINY_DIR / "config.json").is_file():
        raise FileNotFoundError(
            f"the shipped tiny model is missing from {TINY_DIR}; "
            "build it with `fgrpo build-tiny-model`"
        )
    return from_directory(TINY_DIR, dtype)


def describe_tiny() -> ModelSource:
    return ModelSource("tiny", "shipped", str(TINY_DIR), (TINY_DIR / "config.json").is_file())
