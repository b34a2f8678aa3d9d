"""Nested config tables: read from TOML files, flattened as Flower's run_config holds them,
merged."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from fgrpo.core.errors import ConfigError


def read_toml(path: Path) -> dict[str, Any]:
    """A TOML file's tables; a missing file or bad TOML is a ConfigError naming it."""
    if not path.is_file():
        raise ConfigError("--config", f"file not found: {path}")
    try:
        tree = tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise ConfigError(
            str(path), f"not UTF-8 text (byte 0x{err.object[err.start]:02x}); save it as UTF-8"
        ) from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(str(path), f"invalid TOML: {err}") from err
    if (
        not tree
    ):  # an empty or all-comment file is a wrong or unsaved file, not a request for the defaults
        raise ConfigError(
            str(path), "the file is empty (no settings); to use the defaults, leave out --config"
        )
    return tree


def dotted_paths(tree: dict[str, Any], prefix: str = "") -> set[str]:
    """Every dotted key of ``tree``, tables included (``data``, ``data.reward_scale``, ...)."""
    paths: set[str] = set()
    for key, value in tree.items():
        paths.add(f"{prefix}{key}")
        if isinstance(value, dict):
            paths |= dotted_paths(value, f"{prefix}{key}.")
    return paths


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted keys with scalar values, as Flower's run_config holds them."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, dotted + "."))
        elif isinstance(value, list) and not all(isinstance(v, str) for v in value):
            flat[dotted] = json.dumps(
                value, sort_keys=True
            )  # tables or numbers (grpo.reward_weights) travel as JSON
        elif isinstance(value, list):  # Flower's run_config holds scalars only
            flat[dotted] = ",".join(value)
        else:
            flat[dotted] = value
    return flat


def unflatten(flat: dict[str, Any]) -> dict[str, Any]:
    """Dotted keys back to nested tables."""
    tree: dict[str, Any] = {}
    for dotted, value in flat.items():
        parts = dotted.split(".")
        node = tree
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(dotted, "conflicts with a scalar key")
        node[parts[-1]] = value
    return tree


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``extra``'s values over ``base``'s, table by table."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out
