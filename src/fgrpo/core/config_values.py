"""Typed config values from TOML and run_config: the generic half of fgrpo.core.config.

Each dataclass field's ``metadata`` declares its limits (``choices``, ``min``/``max``, ``pattern``,
``neutral``); ``build`` checks every value against its field and builds the nested dataclasses, so
a mistake is one line naming its dotted key. It knows no fgrpo table: the schema lives in
fgrpo.core.config.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
import tomllib
import typing
from collections.abc import Mapping
from typing import Any

from fgrpo.core.errors import ConfigError


def setting(default: Any, help: str, **limits: Any) -> Any:
    """A config field: its default, its help (the one place a key is documented; the configuration
    reference is generated from it) and its limits: ``choices``, ``min``, ``max``, ``pattern`` with
    ``forms``, ``neutral`` (a table entry that means "no entry")."""
    metadata = {"help": help, **limits}
    if isinstance(default, list | dict):
        return dataclasses.field(default_factory=lambda: copy.deepcopy(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def section(cls: type, help: str) -> Any:
    """A config table (``[model]``, ``[federation]``...): its fields' dataclass and what it is for."""
    return dataclasses.field(default_factory=cls, metadata={"help": help})


def choice(*options: str) -> dict[str, Any]:
    return {"choices": options}


def at_least(low: float) -> dict[str, Any]:
    return {"min": low}


def within(low: float, high: float) -> dict[str, Any]:
    return {"min": low, "max": high}


def coerce(key: str, value: Any, annotation: Any, meta: typing.Mapping[str, Any]) -> Any:
    """Check one value against its declared type and limits; return it normalised."""
    origin = typing.get_origin(annotation)
    if origin is list:
        if isinstance(value, str):  # flat run_config form: "a,b,c"
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(key, f"expected a list of strings, got {value!r}")
        unknown = [v for v in value if "choices" in meta and v not in meta["choices"]]
        if unknown:
            raise ConfigError(
                key, f"each must be one of {', '.join(meta['choices'])}; got {unknown[0]!r}"
            )
        return list(value)
    if origin is dict:
        if isinstance(value, str):
            try:
                value = json.loads(value) if value else {}
            except json.JSONDecodeError as err:
                raise ConfigError(key, f"expected a table, got {value!r}") from err
        if not isinstance(value, dict):
            raise ConfigError(key, f"expected a table, got {value!r}")
        value_type = typing.get_args(annotation)[1]
        if value_type is float:
            numbers = {k: coerce(f"{key}.{k}", v, float, {}) for k, v in value.items()}
            return {k: v for k, v in numbers.items() if v != meta.get("neutral")}
        return dict(value)
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(key, f"expected true or false, got {value!r}")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(key, f"expected an integer, got {value!r}")
    elif annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(key, f"expected a number, got {value!r}")
        value = float(value)
    elif annotation is str and not isinstance(value, str):
        raise ConfigError(key, f"expected a string, got {value!r}")
    if "pattern" in meta and not re.fullmatch(meta["pattern"], value):
        raise ConfigError(key, f"must be {meta['forms']}; got {value!r}")
    if "choices" in meta and value not in meta["choices"]:
        raise ConfigError(key, f"must be one of {', '.join(meta['choices'])}; got {value!r}")
    if "min" in meta and value < meta["min"]:
        raise ConfigError(key, f"must be >= {meta['min']}, got {value!r}")
    if "max" in meta and value > meta["max"]:
        raise ConfigError(key, f"must be <= {meta['max']}, got {value!r}")
    return value


def build(
    cls: type, values: dict[str, Any], prefix: str = "", moved: Mapping[str, str] | None = None
) -> Any:
    """``cls`` from a table of values, each checked against its field; ``moved``: {old dotted key:
    new one}, so a key that moved says where to, rather than "unknown key"."""
    moved = moved or {}
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        dotted = f"{prefix}{key}"
        if key not in known:
            raise ConfigError(
                dotted, f"moved to {moved[dotted]}" if dotted in moved else "unknown key"
            )
        annotation = hints[key]
        item_type = (typing.get_args(annotation) or (None,))[0]
        if typing.get_origin(annotation) is list and dataclasses.is_dataclass(item_type):
            kwargs[key] = build_tables(item_type, value, dotted, moved)
        elif dataclasses.is_dataclass(annotation):
            if not isinstance(value, dict):
                raise ConfigError(dotted, "expected a table")
            kwargs[key] = build(annotation, value, dotted + ".", moved)
        else:
            kwargs[key] = coerce(dotted, value, annotation, known[key].metadata)
    return cls(**kwargs)


def build_tables(cls: type, value: Any, dotted: str, moved: Mapping[str, str]) -> list[Any]:
    """A TOML array of tables (``[[data.sources]]``), or its JSON form from run_config."""
    return [
        build(cls, item, f"{dotted}[{i}].", moved)
        for i, item in enumerate(as_tables(value, dotted))
    ]


def as_tables(value: Any, dotted: str) -> list[dict[str, Any]]:
    """An array of tables as TOML, a single table or run_config's JSON text hold it."""
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else []
        except json.JSONDecodeError as err:
            raise ConfigError(dotted, f"expected an array of tables, got {value!r}") from err
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ConfigError(dotted, f"expected an array of tables, got {value!r}")
    return value


def parse_override(text: str) -> tuple[str, Any]:
    """``key=value`` with a TOML value; bare words are read as strings."""
    if "=" not in text:
        raise ConfigError(text, "override must look like key=value")
    key, raw = (part.strip() for part in text.split("=", 1))
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key, value
