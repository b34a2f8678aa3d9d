"""Checkpoints: the global adapter in PEFT format plus the strategy's server state."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from peft import PeftModel

from ..models.transport import load_adapter_state


def save_adapter(model: PeftModel, state: dict[str, np.ndarray], directory: Path) -> None:
    """Write ``state`` as a PEFT adapter directory (adapter_config.json + safetensors)."""
    load_adapter_state(model, state)
    tmp = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    shutil.rmtree(directory, ignore_errors=True)
    tmp.rename(directory)  # never leave a half-written adapter behind


def save_checkpoint(
    out_dir: Path, server_round: int, model: PeftModel, state: dict[str, np.ndarray], strategy_state: dict[str, Any]
) -> None:
    directory = out_dir / "checkpoint"
    directory.mkdir(parents=True, exist_ok=True)
    save_adapter(model, state, directory / "adapter")
    (directory / "state.json").write_text(json.dumps({"round": server_round, "strategy": strategy_state}, indent=2))
