"""Where ``fgrpo export`` may write: never over a user's files, never into the run unless asked.

The export is built in a fresh hidden sibling of ``--out`` and renamed into place,
so an interrupted export leaves no half-written directory under the user's name.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from fgrpo.core.errors import UserInputError
from fgrpo.core.out_dir import check_writable_dir


def check_export_target(run_dir: Path, out: Path, force: bool = False) -> None:
    """Raise UserInputError for an ``--out`` that holds files or lies inside the run (without
    ``force``)."""
    run, target = run_dir.resolve(), out.expanduser().resolve()
    if target == run:
        raise UserInputError(f"--out {out} is the run directory itself; choose a new directory")
    if run.is_relative_to(target):
        raise UserInputError(
            f"--out {out} contains the run directory {run_dir}; choose a new directory"
        )
    if target.is_relative_to(run) and not force:
        raise UserInputError(
            f"--out {out} is inside the run directory {run_dir}; pass --force to write there"
        )
    check_writable_dir(out)
    if target.is_dir() and any(target.iterdir()):
        raise UserInputError(
            f"--out {out} is not empty; choose a new directory (export never deletes files)"
        )


def staging_dir(out: Path) -> Path:
    """A new empty directory beside ``out`` to build the export in."""
    out.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.export-"))


def move_into_place(staging: Path, out: Path) -> None:
    """Rename the finished export to ``out`` (an empty directory there is replaced)."""
    if out.is_dir():
        out.rmdir()  # empty (checked before the export); fails loudly if something appeared meanwhile
    staging.rename(out)
