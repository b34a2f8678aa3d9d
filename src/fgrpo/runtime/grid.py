"""A sweep file expanded into validated points: the cartesian product of a grid over config keys.

A sweep file (TOML)::

    base = "../configs/demo.toml"        # a config file, relative to this file; or a [base] table
    [set]                                # dotted keys every point shares
    "federation.rounds" = 4
    [grid]                               # dotted keys and the values to try; the points are the product
    "strategy.name" = ["fgrpo", "fedavg"]
    seed = [0, 1, 2]
    data = [{alpha = 0.1}, {partition = "iid"}]   # a table sets several keys of one axis together
    [slices.alpha]                       # `--slice alpha`: this set/grid over (and before) the top-level ones
    grid = {"data.alpha" = [0.1, 0.5]}
    [effects.heterogeneity-costs]        # `fgrpo report`: a paired difference over seeds (fgrpo.analysis.effects)
    better = {"strategy.name" = "fedavg", "data.partition" = "iid"}
    worse = {"strategy.name" = "fedavg", "data.alpha" = 0.1}
    [effects.every-task-learns]          # or: each task's final - starting accuracy, in standard errors
    learns = {"strategy.name" = "centralized"}

Every point is validated by ``load_config`` before anything runs, so a typo in the last point
costs a second, not the hours the points before it take.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from fgrpo.core.config import Config
from fgrpo.core.config_tree import dotted_paths, flatten, read_toml
from fgrpo.core.errors import ConfigError, UserInputError
from fgrpo.runtime.configs import load_config

SWEEP_KEYS = {"base", "set", "grid", "slices", "description", "effects"}
EFFECT_KEYS = {"better", "worse", "learns", "min_se", "description"}
SLICE_KEYS = {"set", "grid", "description"}


@dataclass
class Point:
    name: str  # the run directory's name: its grid values, e.g. strategy.name=fgrpo,seed=0
    values: dict[str, Any]  # grid key -> this point's value, as the sweep file wrote it
    config: Config


@dataclass
class Sweep:
    path: Path
    slice: str | None
    points: list[Point]
    description: str = ""
    effects: dict[str, dict[str, Any]] = field(default_factory=dict)  # [effects.<name>] tables


def toml_value(value: Any) -> str:
    """``value`` as the right-hand side of a TOML ``key = value`` line (what --set parses)."""
    return tomli_w.dumps({"v": value}).split("=", 1)[1].strip()


def axis_items(key: str, value: Any) -> list[tuple[str, Any]]:
    """A grid value as dotted keys: a table value sets each of its keys under ``key``."""
    return list(flatten(value, key + ".").items()) if isinstance(value, dict) else [(key, value)]


def value_label(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "+".join(value_label(v) for v in value)
    return str(value)


def values_label(values: dict[str, Any], sep: str = ",") -> str:
    """Grid values as the point name and the report show them:
    strategy.name=fgrpo,data.alpha=0.1."""
    return sep.join(
        f"{k}={value_label(v)}" for key, value in values.items() for k, v in axis_items(key, value)
    )


def point_name(values: dict[str, Any]) -> str:
    """Grid values joined, readable and safe as a directory name."""
    return re.sub(r"[^\w.=,+-]", "_", values_label(values))


def about_point(name: str, err: UserInputError) -> UserInputError:
    """``err`` with the point it concerns in front: ``point strategy.name=fgrpo: data.alpha:
    ...``."""
    if isinstance(err, ConfigError):
        return ConfigError(f"point {name}: {err.key}", str(err)[len(err.key) + 2 :])
    return UserInputError(f"point {name}: {err}")


def _table(doc: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = doc.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{where}{key}", "expected a table")
    return value


def _select(
    doc: dict[str, Any], slice_name: str | None, path: Path
) -> tuple[dict[str, Any], dict[str, Any], str]:
    """(fixed keys, grid, description) of the whole file or of one slice."""
    for key in doc:
        if key not in SWEEP_KEYS:
            raise ConfigError(
                f"{path}: {key}", f"unknown sweep key; known: {', '.join(sorted(SWEEP_KEYS))}"
            )
    fixed, grid = dict(_table(doc, "set", "")), dict(_table(doc, "grid", ""))
    slices = _table(doc, "slices", "")
    if slice_name is None:
        if slices:
            raise ConfigError(
                "--slice",
                f"{path} defines slices {', '.join(slices)}; choose one with --slice NAME",
            )
        return fixed, grid, str(doc.get("description", ""))
    if slice_name not in slices:
        known = ", ".join(slices) or "none"
        raise ConfigError("--slice", f"{path} has no slice {slice_name!r}; its slices: {known}")
    chosen = _table(slices, slice_name, "slices.")
    for key in chosen:
        if key not in SLICE_KEYS:
            raise ConfigError(
                f"slices.{slice_name}.{key}",
                f"unknown slice key; known: {', '.join(sorted(SLICE_KEYS))}",
            )
    fixed.update(_table(chosen, "set", f"slices.{slice_name}."))
    own = _table(chosen, "grid", f"slices.{slice_name}.")
    grid = {
        **own,
        **{k: v for k, v in grid.items() if k not in own},
    }  # the slice's keys first in point names
    return fixed, grid, str(chosen.get("description", doc.get("description", "")))


def _base(doc: dict[str, Any], path: Path) -> tuple[Path | None, list[str]]:
    """The base config file, or an inline [base] table as overrides."""
    base = doc.get("base")
    if base is None:
        return None, []
    if isinstance(base, dict):
        return None, [f"{k}={toml_value(v)}" for k, v in flatten(base).items()]
    if not isinstance(base, str):
        raise ConfigError(f"{path}: base", "expected a config file path or a table")
    file = (path.parent / base).resolve()
    if not file.is_file():
        raise ConfigError(f"{path}: base", f"file not found: {file}")
    return file, []


def _axis_overrides(key: str, value: Any) -> list[str]:
    return [f"{k}={toml_value(v)}" for k, v in axis_items(key, value)]


def read_sweep(path: str | Path, slice_name: str | None = None) -> Sweep:
    """Expand and validate every point of ``path`` (or of its slice ``slice_name``)."""
    path = Path(path)
    doc = read_toml(path)
    fixed, grid, description = _select(doc, slice_name, path)
    if not grid:
        raise ConfigError(
            f"{path}: grid", "empty; a sweep needs at least one key with values to try"
        )
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"grid.{key}", "expected a non-empty list of values to try")
    base_file, base_overrides = _base(doc, path)
    shared = base_overrides + [o for k, v in fixed.items() for o in _axis_overrides(k, v)]
    points: list[Point] = []
    # Seeds outermost: a sweep stopped part-way has every other combination at the first seeds.
    order = sorted(grid, key=lambda key: key != "seed")
    for combo in itertools.product(*(grid[key] for key in order)):
        chosen = dict(zip(order, combo, strict=False))
        values = {key: chosen[key] for key in grid}  # named in the grid's own order
        name = point_name(values)
        overrides = shared + [o for k, v in values.items() for o in _axis_overrides(k, v)]
        try:
            cfg = load_config(
                base_file, overrides, overrides_dir=path.parent
            )  # the sweep file's paths
        except ConfigError as err:
            raise about_point(name, err) from err
        points.append(Point(name, values, cfg))
    seen: set[str] = set()
    for point in points:
        if point.name in seen:
            raise ConfigError(
                f"point {point.name}",
                "two points share this run directory name; make their values differ",
            )
        seen.add(point.name)
    return Sweep(path, slice_name, points, description, read_effects(doc))


def read_effects(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The ``[effects.<name>]`` tables, each ``better`` and ``worse`` or ``learns`` (selections of
    runs by dotted config keys, fgrpo.analysis.effects), checked against the config's keys."""
    known = dotted_paths(Config().to_dict())  # whole tables too: data.reward_scale = {}
    effects = _table(doc, "effects", "")
    for name, effect in effects.items():
        where = f"effects.{name}"
        if not isinstance(effect, dict) or not set(effect) <= EFFECT_KEYS:
            raise ConfigError(where, f"expected a table of {', '.join(sorted(EFFECT_KEYS))}")
        sides = [s for s in ("better", "worse", "learns") if s in effect]
        if sides not in (["better", "worse"], ["learns"]):
            raise ConfigError(where, "needs better and worse, or learns")
        for side in sides:
            for key in _table(effect, side, f"{where}."):
                if key not in known:
                    raise ConfigError(f"{where}.{side}.{key}", "unknown config key")
    return effects
