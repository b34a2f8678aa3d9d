"""Checks on a directory fgrpo is asked to write (``fgrpo run --out``, ``fgrpo export --out``).

They create nothing and delete nothing: they only refuse, in one line, a path that
is a file, lies under a file, or sits where this user cannot write, so the
mistake shows before a minute of Ray start-up rather than after it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from fgrpo.core.errors import UserInputError


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        try:
            if candidate.exists():
                return candidate
        except OSError:  # e.g. a parent we may not search
            continue
    return Path(path.anchor)


def check_writable_dir(path: str | Path, flag: str = "--out") -> None:
    """Raise UserInputError unless ``path`` is, or can be created as, a directory we can write
    in."""
    path = Path(path).expanduser().absolute()
    where = f"{flag} {path}"
    existing = _nearest_existing(path)
    if existing == path and not path.is_dir():
        raise UserInputError(f"{where} is a file, not a directory")
    if not existing.is_dir():
        raise UserInputError(f"{where}: {existing} is a file, so no directory can be made under it")
    try:  # the only reliable test (root, read-only mounts, ACLs): make and remove an empty directory
        with tempfile.TemporaryDirectory(dir=existing, prefix=".fgrpo-write-test-"):
            pass
    except OSError as err:
        raise UserInputError(
            f"{where}: cannot write in {existing} ({err.strerror or err})"
        ) from None
