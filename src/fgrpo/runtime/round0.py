"""The round-0 evaluation, computed once per model, test set and eval settings, not once per run.

A fresh LoRA adapter has B = 0, so the round-0 model is the base model whatever the seed, and the
held-out prompts do not depend on the seed (fgrpo.data.partitions.TEST_STREAM): every point of a sweep on the
same model, tasks and eval settings starts from the same greedy evaluation. It is kept as a small
JSON file under ``~/.cache/fgrpo/round0`` (``FGRPO_CACHE`` names another directory; ``off``
disables it), named by a hash of everything the result depends on: the base weights, the model
config, the tokenizer, the test prompts, the eval settings, the library versions and fgrpo's own
source (a changed answer checker must not be served an old score).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import peft
import torch
import transformers
from peft import PeftModel
from PIL import Image
from transformers import PreTrainedTokenizerBase

from fgrpo.core.config import EvalConfig
from fgrpo.models.source import text_tokenizer
from fgrpo.tasks.images import image_digest

Evaluation = dict[str, dict[str, float]]


def cache_dir() -> Path | None:
    setting = os.environ.get("FGRPO_CACHE", "")
    if setting == "off":
        return None
    return Path(setting or Path.home() / ".cache" / "fgrpo") / "round0"


@cache
def source_digest() -> str:
    """Hash of fgrpo's Python sources, the code that generates, decodes and checks answers."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).resolve().parents[1].rglob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _described(value: Any) -> str:
    """JSON for what json cannot write: an image by its pixels (its repr names a memory address)."""
    return image_digest(value) if isinstance(value, Image.Image) else str(value)


def evaluation_key(
    model: PeftModel,
    tokenizer: PreTrainedTokenizerBase,
    held_out: dict[str, list[dict[str, Any]]],
    settings: EvalConfig,
) -> str | None:
    """Hash naming the round-0 evaluation; None when the adapter is not a no-op (some B != 0)."""
    state = model.state_dict()
    if any(bool(v.any()) for k, v in state.items() if "lora_B" in k):
        return None
    digest = hashlib.sha256()
    for name, tensor in sorted(state.items()):
        if "lora_" not in name:  # lora_A is seed-dependent and multiplied by B = 0
            digest.update(name.encode())
            # raw bytes, whatever the dtype (numpy has no bfloat16); flat, since a 0-d tensor has no
            # byte view
            digest.update(
                tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
            )
    text = text_tokenizer(tokenizer)
    described = {
        "model": model.config.to_json_string(),
        "template": tokenizer.chat_template,
        "vocab": text.get_vocab(),
        "special": text.special_tokens_map,
        "tests": held_out,
        "eval": [settings.max_new_tokens, settings.batch_size, settings.threads],
        "device": next(
            model.parameters()
        ).device.type,  # a GPU's greedy answers may differ from a CPU's
        "versions": [
            torch.__version__,
            transformers.__version__,
            peft.__version__,
            source_digest(),
        ],
    }
    digest.update(json.dumps(described, sort_keys=True, default=_described).encode())
    return digest.hexdigest()


def initial_evaluation(key: str | None, evaluate: Callable[[], Evaluation]) -> Evaluation:
    """The stored evaluation named ``key``, else ``evaluate()`` (stored for the next run)."""
    folder = cache_dir()
    if key is None or folder is None:
        return evaluate()
    path = folder / f"{key}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):  # absent, or unreadable: compute it again
        pass
    result = evaluate()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        scratch = path.with_suffix(f".{os.getpid()}.tmp")
        scratch.write_text(json.dumps(result))
        scratch.replace(path)  # atomic: a concurrent run reads the old file or the whole new one
    except OSError:
        pass  # a read-only home only costs the next run this evaluation
    return result
