"""A rough memory estimate of one client's local GRPO, for ``fgrpo run --dry-run``.

Parameter counts are exact: the model is built from its config on PyTorch's ``meta``
device (no weights, no memory) and wrapped with the run's LoRA config. The rest is the
usual back-of-the-envelope for one device, rounded up, not a measurement:

    weights       P x bytes of ``model.dtype``
    adapter       trainable x 16 bytes (fp32 weight, gradient, two AdamW moments)
    KV cache      2 x layers x kv_heads x head_dim x (prompt + completion) x generation batch x bytes
    logits        micro-batch x completion x vocab x 4 (fp32 log-softmax of completion tokens)
    activations   micro-batch x (prompt + completion) x layers x (17 h + 4 i + 4 kv) values of
                  the weights' width: what autograd keeps per token and layer of a Llama/Qwen-style
                  block (h hidden, i the gated MLP's width, kv the key/value width): two RMSNorms
                  (input, float32 copy, square, scale: ~10 h), attention (q, k, v, rotary halves,
                  output: ~6 h + 4 kv, without the s^2 scores, as SDPA keeps it), the gated MLP
                  (gate, up, activation, product: 4 i) and the residual (h); SmolLM2's measured
                  forward (benchmarks/results/perf_real.md) holds 16.9k values per token and layer,
                  this counts 16.7k. With activation checkpointing only each layer's input (h)
                  plus one layer's full set

    process       on a CPU, what this process holds before the model loads: Python, torch,
                  transformers, TRL and Flower, as a client worker imports them too

TRL's GRPOConfig has no prompt-length limit, so prompts count as long as the longest of (up to
``PROMPT_SAMPLE`` of) the run's training prompts through the model's chat template, or
``PROMPT_TOKENS`` when the data or the tokenizer is not here. With ``grpo.use_vllm`` in colocate
mode vLLM also holds ``vllm_gpu_memory_utilization`` of the GPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psutil
import torch
from peft import get_peft_model
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForImageTextToText,
    AutoTokenizer,
)

from fgrpo.core.config import Config
from fgrpo.core.errors import UserInputError
from fgrpo.data.partitions import training_pool
from fgrpo.models.lora import lora_config
from fgrpo.models.registry import KNOWN_MODELS, load_base, text_tokenizer

PROMPT_TOKENS = 256
PROMPT_SAMPLE = 1000
GB = 1024**3
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


@dataclass(frozen=True)
class MemoryEstimate:
    params: int
    trainable: int
    weights: float  # bytes
    adapter: float
    kv_cache: float
    logits: float
    activations: float
    prompt_tokens: int = PROMPT_TOKENS
    process: float = 0.0  # on a CPU: the interpreter and libraries

    @property
    def total(self) -> float:
        parts = (self.weights, self.adapter, self.kv_cache, self.logits, self.activations)
        return sum(parts) + self.process


def _meta_model(cfg: Config) -> tuple[Any, Any]:
    """The model's modules without weights, and its tokenizer when it is here (else None);
    registry names are small and load for real."""
    name = cfg.model.name
    if name in KNOWN_MODELS:
        return load_base(name, default_system_prompt=cfg.model.default_system_prompt)
    config = AutoConfig.from_pretrained(name)  # a local directory, the HF cache or the hub
    with torch.device("meta"):
        try:
            model = AutoModelForCausalLM.from_config(config)
        except ValueError:  # a vision-language config: no causal-LM class
            model = AutoModelForImageTextToText.from_config(config)
    try:
        tokenizer = AutoTokenizer.from_pretrained(name)
    except (OSError, ValueError):  # no tokenizer files here: prompts count PROMPT_TOKENS
        tokenizer = None
    return model, tokenizer


def prompt_tokens(cfg: Config, tokenizer: Any) -> int:
    """The longest training prompt through the chat template (of up to PROMPT_SAMPLE prompts),
    or PROMPT_TOKENS when the tokenizer or the data is not here."""
    text = text_tokenizer(tokenizer) if tokenizer is not None else None
    if text is None or not getattr(text, "chat_template", None):
        return PROMPT_TOKENS
    try:
        pool = training_pool(cfg)
    except (UserInputError, OSError):  # data on an unreachable hub: --dry-run notes it
        return PROMPT_TOKENS
    rows = pool.select(range(min(len(pool), PROMPT_SAMPLE)))
    return max(
        len(
            text.apply_chat_template(row["prompt"], add_generation_prompt=True, tokenize=True)[
                "input_ids"
            ]
        )
        for row in rows
    )


def _text_config(model: Any) -> Any:
    config = model.config
    return getattr(config, "text_config", None) or config


def estimate(cfg: Config) -> MemoryEstimate:

    before_model = psutil.Process().memory_info().rss
    model, tokenizer = _meta_model(cfg)
    params = sum(p.numel() for p in model.parameters())
    trainable = sum(
        p.numel()
        for p in get_peft_model(model, lora_config(cfg.model, model)).parameters()
        if p.requires_grad
    )
    text = _text_config(model)
    layers, hidden, vocab = text.num_hidden_layers, text.hidden_size, text.vocab_size
    heads = text.num_attention_heads
    kv_heads = getattr(text, "num_key_value_heads", None) or heads
    head_dim = getattr(text, "head_dim", None) or hidden // heads
    width = DTYPE_BYTES[cfg.model.dtype]
    settings = cfg.grpo_settings()
    micro = int(settings["per_device_train_batch_size"])
    generation = int(
        settings.get("generation_batch_size")
        or micro
        * int(
            settings.get("steps_per_generation") or settings.get("gradient_accumulation_steps") or 1
        )
    )
    prompt = prompt_tokens(cfg, tokenizer)
    tokens = prompt + int(settings["max_completion_length"])
    mlp = getattr(text, "intermediate_size", None) or 4 * hidden
    per_layer = micro * tokens * (17 * hidden + 4 * mlp + 4 * kv_heads * head_dim) * width
    if settings.get("activation_checkpointing") or settings.get("gradient_checkpointing"):
        activations = micro * tokens * hidden * width * layers + per_layer
    else:
        activations = per_layer * layers
    return MemoryEstimate(
        params=params,
        trainable=trainable,
        weights=params * width,
        adapter=trainable * 16,
        kv_cache=2 * layers * kv_heads * head_dim * tokens * generation * width,
        logits=micro
        * int(settings["max_completion_length"])
        * vocab
        * 4,  # TRL keeps completion logits only
        activations=activations,
        prompt_tokens=prompt,
        process=0.0 if torch.cuda.is_available() else float(before_model),
    )


def memory_line(cfg: Config) -> str:
    """What --dry-run prints about memory, or why it cannot say (the config is not reachable)."""
    try:
        m = estimate(cfg)
    except OSError as err:  # transformers' "not found / cannot reach the hub" errors are OSErrors
        return f"memory: not estimated ({cfg.model.name}'s config.json is not available here: {type(err).__name__})"
    settings = cfg.grpo_settings()
    vllm = (
        f" + vLLM's {settings.get('vllm_gpu_memory_utilization', 0.3)} of the GPU (colocate)"
        if settings.get("use_vllm") and settings.get("vllm_mode", "colocate") == "colocate"
        else ""
    )
    process = f"+ process {m.process / GB:.1f} GB " if m.process else ""
    return (
        f"memory per client, rough: {m.params / 1e9:.3g}B parameters ({m.trainable / 1e6:.3g}M trainable); "
        f"weights {m.weights / GB:.1f} GB + adapter training {m.adapter / GB:.2f} GB + generation KV cache "
        f"{m.kv_cache / GB:.1f} GB + logits {m.logits / GB:.1f} GB + activations {m.activations / GB:.1f} GB "
        f"{process}= {m.total / GB:.1f} GB{vllm} (prompts of {m.prompt_tokens} tokens)"
    )
