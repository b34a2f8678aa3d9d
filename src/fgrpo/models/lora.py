"""LoRA adapters on a base model, and the per-process cache of the wrapped model."""

from __future__ import annotations

from functools import lru_cache

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from fgrpo.core.config import ModelConfig
from fgrpo.models.cpu import freeze_heap
from fgrpo.models.registry import load_base
from fgrpo.models.vision import is_vision_model, language_model_targets


def lora_config(model_cfg: ModelConfig, base: PreTrainedModel | None = None) -> LoraConfig:
    """The adapter of ``model_cfg``: ["all-linear"] (the default) is PEFT's
    every-linear-layer-but-the-output shorthand, which it takes as a bare string; without target
    modules, PEFT's per-architecture defaults (q_proj/v_proj for Llama/Qwen2, c_attn for GPT-2);
    in a vision-language ``base`` either is restricted to its language model (fgrpo.models.vision)."""
    targets: list[str] | str | None = list(model_cfg.target_modules) or None
    vision = base is not None and is_vision_model(base)
    if targets in (None, ["all-linear"]) and vision:
        targets = language_model_targets(base, all_linear=targets is not None)
    elif targets == ["all-linear"]:
        targets = "all-linear"
    return LoraConfig(
        r=model_cfg.lora_r,
        lora_alpha=model_cfg.lora_alpha,
        lora_dropout=model_cfg.lora_dropout,
        target_modules=targets,
        task_type="CAUSAL_LM",
    )


def fresh_adapter_model(
    model_cfg: ModelConfig, seed: int
) -> tuple[PeftModel, PreTrainedTokenizerBase]:
    """Base model wrapped with a newly initialised adapter (B = 0, so it starts as a no-op)."""
    base, tokenizer = load_base(model_cfg.name, model_cfg.dtype, model_cfg.default_system_prompt)
    torch.manual_seed(seed)
    return get_peft_model(base, lora_config(model_cfg, base)), tokenizer


@lru_cache(maxsize=2)
def _cached(settings: tuple[tuple[str, object], ...]) -> tuple[PeftModel, PreTrainedTokenizerBase]:
    cfg = ModelConfig(**{k: list(v) if isinstance(v, tuple) else v for k, v in settings})
    loaded = fresh_adapter_model(cfg, seed=0)
    freeze_heap()  # what is alive now lives as long as the process: later collections skip it
    return loaded


def cached_adapter_model(model_cfg: ModelConfig) -> tuple[PeftModel, PreTrainedTokenizerBase]:
    """The process-wide adapter model: base weights load once, adapters are overwritten per round.

    This is the one piece of global mutable state the design allows.
    """
    return _cached(
        tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in vars(model_cfg).items())
    )
