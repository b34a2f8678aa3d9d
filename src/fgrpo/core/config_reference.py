"""The configuration reference, generated from the fields of fgrpo.core.config (their help text,
limits and defaults): ``python -m fgrpo.core.config_reference > docs/configuration.md``; a test
keeps the committed page equal to it."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from fgrpo.core.config import Config, SourceConfig

HEADER = """# Configuration reference

Every key of a run's config, as a TOML file (`fgrpo run --config`), an override
(`--set federation.rounds=5`) or Flower's run config (`flwr run . --run-config ...`) sets it.
This page is generated from the fields' own help text (`fgrpo/core/config.py`):
`python -m fgrpo.core.config_reference > docs/configuration.md`.
"""


def limits(f: dataclasses.Field) -> str:
    meta = f.metadata
    parts = []
    if "choices" in meta:
        parts.append(" \\| ".join(f"`{c}`" for c in meta["choices"]))
    if "forms" in meta:
        parts.append(meta["forms"])
    if "min" in meta and "max" in meta:
        parts.append(f"{meta['min']:g} to {meta['max']:g}")
    elif "min" in meta:
        parts.append(f"≥ {meta['min']:g}")
    return "; ".join(parts)


def default_text(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        value: Any = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:
        return ""
    if isinstance(value, str):
        return f'`"{value}"`'
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, list):
        return "`[" + ", ".join(f'"{v}"' for v in value) + "]`" if value else "`[]`"
    if isinstance(value, dict):
        return "`{}`"
    return f"`{value}`"


def table(prefix: str, cls: type) -> list[str]:
    rows = ["| key | default | allowed | what it does |", "|---|---|---|---|"]
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            continue
        rows.append(
            f"| `{prefix}{f.name}` | {default_text(f)} | {limits(f)} | {f.metadata['help']} |"
        )
    return rows


def reference_markdown() -> str:
    lines = [HEADER, "## Top level", "", *table("", Config), ""]
    for f in dataclasses.fields(Config):
        cls = typing.get_type_hints(Config)[f.name]
        if dataclasses.is_dataclass(cls):
            lines += [f"## `[{f.name}]`", "", f.metadata["help"], "", *table(f"{f.name}.", cls), ""]
    lines += [
        "## `[[data.sources]]`",
        "",
        (SourceConfig.__doc__ or "").splitlines()[0],
        "",
        *table("", SourceConfig),
        "",
    ]
    return "\n".join(lines)


def help_of(dotted: str) -> str:
    """The help text of one dotted key, e.g. ``strategy.gain``."""
    cls: Any = Config
    *tables, key = dotted.split(".")
    for name in tables:
        cls = typing.get_type_hints(cls)[name]
    return next(f.metadata["help"] for f in dataclasses.fields(cls) if f.name == key)


if __name__ == "__main__":
    print(reference_markdown(), end="")
