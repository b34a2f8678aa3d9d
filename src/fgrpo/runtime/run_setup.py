"""`fgrpo run`'s run directory: a fresh one, ``--resume DIR`` or ``--overwrite``.

- Fresh (default): the directory must be missing or empty; a run never mixes its files with
  another run's.
- ``--overwrite``: what fgrpo wrote into an existing run directory (``RUN_ENTRIES``) is removed,
  and only once the new config has validated (the caller clears it last, just before the run
  starts); anything else there (a user's notes, their own plots) stays.
- ``--resume DIR``: the run continues from DIR's checkpoint with DIR's config.toml. ``--config`` /
  ``--set`` may be given but must resolve to the same config, except ``federation.rounds``, which
  may grow (to extend a run) but not drop below the checkpoint's round.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from fgrpo.core.config import Config
from fgrpo.core.errors import ConfigError
from fgrpo.core.out_dir import check_writable_dir
from fgrpo.runtime.checkpoint import checkpoint_header
from fgrpo.runtime.configs import load_config
from fgrpo.server.strategies import strategy_entry

RUN_MARKERS = ("config.toml", "metrics.jsonl")  # what every fgrpo run directory has
# Every top-level entry fgrpo writes into a run directory (tests check a real run writes no other),
# and so all that --overwrite may remove.
RUN_ENTRIES = frozenset(
    {
        "config.toml",
        "config.toml.tmp",
        "versions.json",
        "metrics.jsonl",
        "summary.json",
        "resources.json",
        "grpo_settings.json",
        "run.log",
        "plots",
        "checkpoint",
        "checkpoint.old",
        "final",
        "clients",
        "tracking.json",  # tracking.backends (fgrpo.runtime.tracking)
        "tensorboard",
        "mlflow",
        "wandb",
    }
)
EXTENDABLE = "federation.rounds"


def claim_fresh(out: Path, overwrite: bool) -> None:
    """Refuse an unwritable or non-empty ``out`` unless ``overwrite``; checks only (see
    ``clear``)."""
    check_writable_dir(out)
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not overwrite:
        raise ConfigError(
            "--out",
            f"{out} is not empty; continue that run with --resume {out} or replace it with --overwrite",
        )
    if not all((out / marker).is_file() for marker in RUN_MARKERS):
        raise ConfigError(
            "--overwrite",
            f"{out} is not an fgrpo run directory (no {' or '.join(RUN_MARKERS)}); not deleting it",
        )


def clear(out: Path) -> None:
    """Remove fgrpo's own entries from a directory ``claim_fresh`` allowed to be overwritten; the
    directory and everything else in it stay."""
    if not out.is_dir():
        return
    for child in out.iterdir():
        if child.name not in RUN_ENTRIES:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def resume_config(run: Path, config_path: str | None, overrides: list[str]) -> Config:
    """DIR's config, checked against what the command line asks for (see the module docstring)."""
    saved_path = run / "config.toml"
    if not saved_path.is_file():
        raise ConfigError("--resume", f"{run} has no config.toml; not an fgrpo run directory")
    saved = load_config(saved_path)
    asked = load_config(config_path or saved_path, overrides)
    saved.output.dir = asked.output.dir = str(run.resolve())
    before, after = saved.flatten(), asked.flatten()
    for key in sorted(set(before) | set(after)):
        if key != EXTENDABLE and before.get(key) != after.get(key):
            raise ConfigError(
                key,
                f"{after.get(key)!r} differs from {before.get(key)!r} in {saved_path}; "
                f"--resume continues a run as it was configured (only {EXTENDABLE} may change)",
            )
    if not strategy_entry(saved.strategy.name).resumable:
        raise ConfigError(
            "--resume",
            f"strategy {saved.strategy.name!r} cannot be resumed; start it again with --overwrite",
        )
    done = checked_progress(run)
    if asked.federation.rounds < done:
        raise ConfigError(
            EXTENDABLE, f"{asked.federation.rounds} is below the {done} rounds {run} has completed"
        )
    if done == asked.federation.rounds and (run / "summary.json").is_file():
        raise ConfigError(
            "--resume",
            f"{run} has completed all {done} rounds; to train on, add --set {EXTENDABLE}=N (N > {done})",
        )
    return asked


def checked_progress(run: Path) -> int:
    """The rounds ``run``'s checkpoint has completed (0 without one), if a resume can rely on it."""

    header = checkpoint_header(run)
    if header is None:
        return 0  # died before its round-0 checkpoint: the resume starts over
    if "metrics-bytes" not in header:
        raise ConfigError(
            "--resume",
            f"{run}'s checkpoint predates resumable checkpoints (no RNG or metrics state)",
        )
    metrics = run / "metrics.jsonl"
    if not metrics.is_file() or metrics.stat().st_size < int(header["metrics-bytes"]):
        raise ConfigError(
            "--resume",
            f"{metrics} is shorter than at round {header['round']}'s checkpoint; it was edited",
        )
    return int(header["round"])
