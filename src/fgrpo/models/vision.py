"""Vision-language models: the in-memory ``tiny-vl``, hub/local VLMs, and where their LoRA goes.

A VLM is loaded with ``AutoModelForImageTextToText`` and travels with its ``AutoProcessor``
(what TRL's GRPOTrainer takes as ``processing_class`` to turn an ``image`` column into
``pixel_values``). LoRA adapts the language model only, unless ``model.target_modules`` says
otherwise: the vision tower's features stay those it was pretrained to give, and the adapter
that crosses the network stays the size of a text model's.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as DEFAULTS
from transformers import (
    AutoConfig,
    AutoModelForImageTextToText,
    AutoProcessor,
    PreTrainedModel,
    ProcessorMixin,
    Qwen2VLConfig,
    Qwen2VLForConditionalGeneration,
    Qwen2VLProcessor,
)
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

from fgrpo.core.errors import ConfigError
from fgrpo.models.tokenizer import build_char_tokenizer

VISION_TOKENS = ("<|vision_start|>", "<|image_pad|>", "<|vision_end|>")  # Qwen2-VL's names
# The char tokenizer's template, with Qwen2-VL's image block for image parts of a message.
VL_CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{% if message['role'] == 'assistant' %}</s>{% endif %}\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
TINY_VL_PIXELS = 112 * 112  # an image becomes at most 8x8 patches of 14 px, merged 2x2: 16 tokens
FALLBACK_TARGETS = ("q_proj", "v_proj")  # PEFT's default for Llama/Qwen2 text models


class ImageOnlyQwen2VLProcessor(Qwen2VLProcessor):
    """Qwen2-VL's processor without a video processor (that one needs torchvision)."""

    def check_argument_for_proper_class(self, argument_name: str, argument: Any):  # noqa: ANN201
        if argument_name == "video_processor" and argument is None:
            return None
        return super().check_argument_for_proper_class(argument_name, argument)


def tiny_vl_processor() -> ImageOnlyQwen2VLProcessor:

    tokenizer = build_char_tokenizer()
    tokenizer.add_special_tokens({"additional_special_tokens": list(VISION_TOKENS)})
    tokenizer.chat_template = VL_CHAT_TEMPLATE
    images = Qwen2VLImageProcessorPil(
        min_pixels=56 * 56,
        max_pixels=TINY_VL_PIXELS,
        patch_size=14,
        merge_size=2,
        temporal_patch_size=2,
    )
    return ImageOnlyQwen2VLProcessor(
        image_processor=images, tokenizer=tokenizer, chat_template=VL_CHAT_TEMPLATE
    )


def tiny_vl(seed: int = 0) -> tuple[PreTrainedModel, ImageOnlyQwen2VLProcessor]:
    """A randomly initialised Qwen2-VL (~1.1M parameters): a 2-block vision tower of width 64 in
    front of the 4-layer, width-128 text model ``tiny-random`` has, with the char tokenizer."""

    processor = tiny_vl_processor()
    tokenizer = processor.tokenizer
    start, pad, end = tokenizer.convert_tokens_to_ids(list(VISION_TOKENS))
    config = Qwen2VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 128,
            "intermediate_size": 384,
            "num_hidden_layers": 4,
            "num_attention_heads": 4,
            "num_key_value_heads": 4,
            "max_position_embeddings": 512,
            "pad_token_id": tokenizer.pad_token_id,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            # multimodal rotary sections (time, height, width) over half the head dimension (32 / 2)
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 10000.0,
                "mrope_section": [4, 6, 6],
            },
        },
        vision_config={
            "depth": 2,
            "embed_dim": 64,
            "hidden_size": 128,
            "num_heads": 2,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
        },
        image_token_id=pad,
        video_token_id=pad,
        vision_start_token_id=start,
        vision_end_token_id=end,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    return Qwen2VLForConditionalGeneration(config), processor


def is_vision_config(path: str | Path) -> bool:
    """Whether a hub id or model directory holds a vision-language model (reads only its config)."""

    return hasattr(AutoConfig.from_pretrained(path), "vision_config")


def load_vision_model(
    path: str | Path, dtype: str = "float32"
) -> tuple[PreTrainedModel, ProcessorMixin]:

    processor = AutoProcessor.from_pretrained(path)
    return AutoModelForImageTextToText.from_pretrained(path, dtype=getattr(torch, dtype)), processor


def is_vision_model(model: torch.nn.Module) -> bool:
    return hasattr(getattr(model, "config", None), "vision_config")


def language_model_targets(model: PreTrainedModel, all_linear: bool = False) -> str:
    """PEFT ``target_modules`` regex inside the language model only (never the vision tower's):
    PEFT's default projections of this architecture's text model, or with ``all_linear`` every
    linear layer there ("all-linear" on the whole model would adapt the vision tower too)."""

    text_type = model.config.get_text_config().model_type
    leaves = DEFAULTS.get(model.config.model_type) or DEFAULTS.get(text_type) or FALLBACK_TARGETS
    if all_linear:
        leaves = sorted(
            {
                name.rsplit(".", 1)[-1]
                for name, module in model.named_modules()
                if isinstance(module, torch.nn.Linear) and ".language_model." in f".{name}"
            }
        )
    pattern = rf".*language_model\..*\.({'|'.join(leaves)})"
    if not any(re.fullmatch(pattern, name) for name, _ in model.named_modules()):
        raise ConfigError(
            "model.target_modules",
            f"no {'/'.join(leaves)} layers under a `language_model` module in "
            f"{type(model).__name__}; name the modules to adapt",
        )
    return pattern
