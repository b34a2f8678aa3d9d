"""A data source's image column -> one PIL image per row (TRL's ``image`` column).

A cell may hold a PIL image (a hub dataset's ``Image`` feature), an encoded image
(``{"bytes": ..., "path": ...}``, as parquet stores them), or a path, which is read
relative to the data file's folder. A list of exactly one of these counts as that one.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError


class ImageError(ValueError):
    """The cell names no readable image; the message says which file and why."""


def _read(source: Any, shown: str) -> Image.Image:
    try:
        with Image.open(source) as opened:
            opened.load()
            return opened.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ImageError(f"cannot read image {shown}: {type(err).__name__}: {err}") from None


def load_image(value: Any, folder: Path | None) -> Image.Image:
    """The image a cell holds or names; ``folder`` resolves relative paths (None: the working
    directory)."""
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, Image.Image):
        return value.convert("RGB")
    if isinstance(value, dict) and value.get("bytes"):
        return _read(
            io.BytesIO(value["bytes"]), f"bytes of {value.get('path') or 'an embedded image'}"
        )
    if isinstance(value, dict) and value.get("path"):
        value = value["path"]
    if isinstance(value, str) and value.strip():
        path = Path(value).expanduser()
        if not path.is_absolute() and folder is not None:
            path = folder / path
        if not path.is_file():
            raise ImageError(f"image file not found: {path}")
        return _read(path, str(path))
    if isinstance(value, list):
        raise ImageError(f"{len(value)} images in one row; fgrpo gives a prompt one image")
    raise ImageError(f"expected an image or an image path, got {str(value)[:60]!r}")


def image_digest(image: Image.Image) -> str:
    """Names an image by its pixels (equal pictures, equal names)."""
    return hashlib.sha256(f"{image.mode}{image.size}".encode() + image.tobytes()).hexdigest()[:16]
