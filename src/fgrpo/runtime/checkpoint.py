"""Checkpoints: everything a run needs to continue exactly where its last completed round left off.

Layout of ``DIR/checkpoint/``::

    adapter/       the global adapter, PEFT format (also what `fgrpo export` falls back to)
    state.json     round, strategy state, RNG state, round-0 evaluation, metrics.jsonl length, lineage
    arrays.npz     the adapter again (exact, keyed as the server holds it) and every numpy array
                   of state.json (strategy tensors, RNG key tables), by reference

A checkpoint is written whole into ``checkpoint.new/`` and then swapped in by renames, so a crash
leaves either the previous checkpoint or the new one, never a mixture: ``checkpoint/`` if it
exists, else ``checkpoint.old/`` (a crash between the two renames) is the latest complete one.
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from peft import PeftModel

from fgrpo.models.transport import load_adapter_state

ARRAY_REF = "$array"  # {"$array": name} in state.json stands for arrays.npz[name]


def save_adapter(model: PeftModel, state: dict[str, np.ndarray], directory: Path) -> None:
    """Write ``state`` as a PEFT adapter directory (adapter_config.json + safetensors)."""
    load_adapter_state(model, state)
    tmp = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    shutil.rmtree(directory, ignore_errors=True)
    tmp.rename(directory)  # never leave a half-written adapter behind


@dataclass
class Checkpoint:
    """The run after round ``round`` (0: before any training)."""

    round: int
    adapter: dict[str, np.ndarray]
    strategy: dict[str, Any]
    rng: dict[str, Any] = field(default_factory=dict)
    initial_eval: dict[str, Any] | None = None
    metrics_bytes: int = 0  # length of metrics.jsonl once this round's line was written
    run_id: str = ""
    # Last committed round of every earlier session of this run (a session ends in a crash or a
    # stop and is followed by a --resume): tells clients which of their saved states are stale.
    sessions: list[int] = field(default_factory=list)


def split_arrays(tree: Any, arrays: dict[str, np.ndarray], path: str = "") -> Any:
    """``tree`` with every numpy array replaced by a reference into ``arrays`` (filled here)."""
    if isinstance(tree, np.ndarray):
        arrays[path] = tree
        return {ARRAY_REF: path}
    if isinstance(tree, dict):
        return {k: split_arrays(v, arrays, f"{path}/{k}") for k, v in tree.items()}
    if isinstance(tree, list | tuple):
        return [split_arrays(v, arrays, f"{path}/{i}") for i, v in enumerate(tree)]
    return tree


def join_arrays(tree: Any, arrays: Any) -> Any:
    """Inverse of ``split_arrays`` (tuples come back as lists)."""
    if isinstance(tree, dict):
        if set(tree) == {ARRAY_REF}:
            return np.array(arrays[tree[ARRAY_REF]])
        return {k: join_arrays(v, arrays) for k, v in tree.items()}
    if isinstance(tree, list):
        return [join_arrays(v, arrays) for v in tree]
    return tree


def rng_state() -> dict[str, Any]:
    """Python's (Flower samples clients with it), numpy's and torch's global generators."""
    version, keys, gauss = random.getstate()
    name, np_keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": [version, list(keys), gauss],
        "numpy": [name, np_keys, int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state().numpy(),
    }


def restore_rng(state: dict[str, Any]) -> None:
    version, keys, gauss = state["python"]
    random.setstate((version, tuple(keys), gauss))
    name, np_keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(np_keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(torch.from_numpy(np.asarray(state["torch"], dtype=np.uint8)))


def save_checkpoint(out_dir: Path, checkpoint: Checkpoint, model: PeftModel) -> None:
    new, current, old = (
        out_dir / name for name in ("checkpoint.new", "checkpoint", "checkpoint.old")
    )
    shutil.rmtree(new, ignore_errors=True)
    new.mkdir(parents=True)
    save_adapter(model, checkpoint.adapter, new / "adapter")
    arrays: dict[str, np.ndarray] = {}
    state = {
        "round": checkpoint.round,
        "adapter": split_arrays(checkpoint.adapter, arrays, "adapter"),
        "strategy": split_arrays(checkpoint.strategy, arrays, "strategy"),
        "rng": split_arrays(checkpoint.rng, arrays, "rng"),
        "initial-eval": checkpoint.initial_eval,
        "metrics-bytes": checkpoint.metrics_bytes,
        "run-id": checkpoint.run_id,
        "sessions": checkpoint.sessions,
    }
    with (new / "arrays.npz").open("wb") as fh:
        np.savez(fh, **arrays)
    (new / "state.json").write_text(json.dumps(state, indent=1))
    if current.exists():
        shutil.rmtree(old, ignore_errors=True)
        current.rename(old)
    new.rename(current)
    shutil.rmtree(old, ignore_errors=True)


def latest_checkpoint_dir(out_dir: Path) -> Path | None:
    for candidate in (out_dir / "checkpoint", out_dir / "checkpoint.old"):
        if (candidate / "state.json").is_file():
            return candidate
    return None


def load_checkpoint(out_dir: Path) -> Checkpoint | None:
    """The latest complete checkpoint, or None if the run never wrote one."""
    directory = latest_checkpoint_dir(out_dir)
    if directory is None:
        return None
    state = json.loads((directory / "state.json").read_text())
    with np.load(directory / "arrays.npz", allow_pickle=False) as arrays:
        return Checkpoint(
            round=int(state["round"]),
            adapter=join_arrays(state["adapter"], arrays),
            strategy=join_arrays(state["strategy"], arrays),
            rng=join_arrays(state["rng"], arrays),
            initial_eval=state["initial-eval"],
            metrics_bytes=int(state["metrics-bytes"]),
            run_id=str(state["run-id"]),
            sessions=[int(r) for r in state["sessions"]],
        )


def checkpoint_header(out_dir: Path) -> dict[str, Any] | None:
    """The latest complete checkpoint's state.json (cheap: no tensors), or None."""
    directory = latest_checkpoint_dir(out_dir)
    return None if directory is None else json.loads((directory / "state.json").read_text())


def checkpoint_round(out_dir: Path) -> int | None:
    header = checkpoint_header(out_dir)
    return None if header is None else int(header["round"])
