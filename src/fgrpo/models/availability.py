"""Is a model (or an adapter) loadable here? Answered before anything starts, in one line.

A model name is a registry name (``fgrpo models``), a local model directory, or
a Hugging Face hub id. A hub id counts as available when its ``config.json`` is
in the local Hugging Face cache or the hub knows it; offline (``HF_HUB_OFFLINE``
or no network) an uncached id is reported at once instead of after transformers'
download retries.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

import httpx
from huggingface_hub import HfApi, constants, try_to_load_from_cache
from huggingface_hub.errors import (
    GatedRepoError,
    HFValidationError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
)
from peft import PeftModel
from peft.utils import SAFETENSORS_WEIGHTS_NAME, WEIGHTS_NAME

from fgrpo.core.errors import HubUnreachable, UserInputError
from fgrpo.models.registry import KNOWN_MODELS, describe

HUB_TIMEOUT = (
    4.0  # seconds for the one metadata request about an uncached hub id (the hub answers in <1 s)
)


def check_model(name: str, key: str = "model.name") -> None:
    """Raise UserInputError naming ``name`` when it cannot be loaded on this machine."""
    where = f"{key} {name!r}"
    if name in KNOWN_MODELS:
        source = describe(name)
        if not source.available:
            raise UserInputError(f"{where} is not available: {source.location}")
        return
    local = Path(name).expanduser()
    if local.is_dir():
        if not (local / "config.json").is_file():
            raise UserInputError(
                f"{where}: the directory has no config.json (not a Hugging Face model directory)"
            )
        return
    if local.exists():
        raise UserInputError(f"{where} is a file; give a model directory or a hub id")
    near = difflib.get_close_matches(name, KNOWN_MODELS, n=1, cutoff=0.75)
    if near and "/" not in name:  # a registry name mistyped: say so now, not after asking the hub
        raise UserInputError(
            f"{where} is neither a model name nor a local model directory; did you mean "
            f"{near[0]!r}? (names: {', '.join(KNOWN_MODELS)}; `fgrpo models` lists them)"
        )
    _check_hub_id(name, where)


def _check_hub_id(name: str, where: str) -> None:

    unknown = (
        f"{where} is not a model name ({', '.join(KNOWN_MODELS)}), a local model directory, "
        "or a Hugging Face hub id"
    )
    try:
        cached = try_to_load_from_cache(name, "config.json")
    except HFValidationError:
        raise UserInputError(unknown) from None
    if isinstance(cached, str):
        return
    if constants.HF_HUB_OFFLINE:
        raise HubUnreachable(f"{unknown} in the local cache (HF_HUB_OFFLINE is set)")
    try:
        HfApi().model_info(name, timeout=HUB_TIMEOUT)
    except GatedRepoError:
        return  # it exists; loading it asks for the user's credentials
    except RepositoryNotFoundError:
        raise UserInputError(f"{unknown} (the hub has no such model)") from None
    except (httpx.TransportError, OfflineModeIsEnabled, OSError) as err:
        raise HubUnreachable(
            f"{unknown} available here: it is not in the local Hugging Face cache and the hub is unreachable "
            f"({type(err).__name__})"
        ) from None


def check_adapter_dir(path: str | Path, key: str = "--adapter") -> None:
    """Raise UserInputError unless ``path`` holds a PEFT adapter: a config with a peft_type and
    weights."""

    where = f"{key} {path}"
    folder = Path(path)
    if not folder.is_dir():
        raise UserInputError(f"{where}: no such directory")
    config_path = folder / "adapter_config.json"
    if not config_path.is_file():
        raise UserInputError(
            f"{where}: no adapter_config.json there (not a PEFT adapter directory)"
        )
    try:
        config = json.loads(config_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserInputError(f"{where}: adapter_config.json is not valid JSON ({err})") from None
    if not isinstance(config, dict) or "peft_type" not in config:
        raise UserInputError(
            f"{where}: adapter_config.json has no peft_type (not a PEFT adapter config)"
        )
    if not any(
        (folder / weights).is_file() for weights in (SAFETENSORS_WEIGHTS_NAME, WEIGHTS_NAME)
    ):
        raise UserInputError(
            f"{where}: no adapter weights ({SAFETENSORS_WEIGHTS_NAME} or {WEIGHTS_NAME})"
        )


def check_adapter_base(path: str | Path, name: str, key: str = "--adapter") -> None:
    """Refuse an exported adapter whose ``fgrpo_export.json`` names another base model than ``name``
    (loading it would fail deep in transformers with a size mismatch, or load silently wrong)."""
    record = Path(path) / "fgrpo_export.json"
    if not record.is_file():
        return  # a run's own adapter: load_adapter names a mismatch when it shows
    try:
        base = json.loads(record.read_text()).get("base_model")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        raise UserInputError(f"{key} {path}: fgrpo_export.json is not a JSON object") from None
    if base and base != name:
        raise UserInputError(
            f"{key} {path} was trained on base model {base!r}, not {name!r}; evaluate it with "
            f"--model {base}"
        )


def load_adapter(model: Any, path: str | Path, name: str, key: str = "--adapter") -> Any:
    """``model`` with the PEFT adapter at ``path``; an adapter shaped for another base is one
    line."""

    try:
        return PeftModel.from_pretrained(model, str(path))
    except RuntimeError as err:
        if "size mismatch" not in str(err):
            raise
        config = json.loads((Path(path) / "adapter_config.json").read_text())
        trained_on = config.get("base_model_name_or_path")
        named = (
            f"adapter_config.json names {trained_on!r}"
            if trained_on
            else "adapter_config.json names none"
        )
        raise UserInputError(
            f"{key} {path} does not fit base model {name!r}: its LoRA weights have other shapes, "
            f"it was trained on another base ({named})"
        ) from None
