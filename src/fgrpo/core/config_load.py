"""A Config from a TOML file, ``--set`` overrides or Flower's flat run_config.

Each value is checked against its field (fgrpo.core.config_values) and against the rest of the
config; what the registries and TRL say is checked above this layer (fgrpo.runtime.configs).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fgrpo.core import config_tree
from fgrpo.core.config import Config
from fgrpo.core.config_paths import resolve_tree
from fgrpo.core.config_values import build, parse_override
from fgrpo.core.errors import ConfigError

# Keys that moved to another table since an earlier release (old run directories hold them).
MOVED_KEYS = {"strategy.probe_size": "data.probe_size"}


def parse_config(tree: dict[str, Any]) -> Config:
    """A Config from its nested table, every value checked against its field and the checks that
    need nothing but the config itself. What the registries (strategies, tasks, reward functions)
    and TRL say is checked above this layer: fgrpo.runtime.configs."""
    cfg = build(Config, tree, moved=MOVED_KEYS)
    if cfg.federation.min_clients > cfg.federation.num_clients:
        raise ConfigError("federation.min_clients", "cannot exceed federation.num_clients")
    if 0 < cfg.federation.max_norm_ratio < 1:
        raise ConfigError(
            "federation.max_norm_ratio",
            "must be 0 (off) or >= 1: below 1 it refuses the median update itself",
        )
    if cfg.eval.max_new_tokens < 1:
        raise ConfigError("eval.max_new_tokens", "must be positive")
    if cfg.strategy.gain == "delta" and cfg.strategy.signal != "probe":
        raise ConfigError(
            "strategy.gain",
            "delta compares the probe before and after training: set strategy.signal=probe",
        )
    for key, scale in cfg.federation.client_lr_scale.items():
        if not key.isdigit() or int(key) >= cfg.federation.num_clients:
            raise ConfigError(
                f"federation.client_lr_scale.{key}", "keys are partition ids 0..num_clients-1"
            )
        if scale < 0:
            raise ConfigError(f"federation.client_lr_scale.{key}", f"must be >= 0, got {scale}")
    return cfg


def tree_from_flat(flat: dict[str, Any]) -> dict[str, Any]:
    """The nested table of Flower's flattened run_config (a grpo.* list, such as reward_weights,
    travels as JSON: TRL's keys have no declared type to parse it by)."""
    values = {
        k: json.loads(v)
        if k.startswith("grpo.") and isinstance(v, str) and v.startswith("[")
        else v
        for k, v in flat.items()
    }
    return config_tree.unflatten(values)


def read_config_tree(
    path: str | Path | None = None,
    overrides: list[str] | None = None,
    overrides_dir: Path | None = None,
) -> dict[str, Any]:
    """TOML file (optional) plus ``key=value`` overrides, as one nested table.

    Paths resolve against the file's folder, the overrides' against ``overrides_dir`` (default:
    the current directory, where a ``--set`` is typed); fgrpo.core.config_paths says which keys."""
    tree: dict[str, Any] = {}
    if path is not None:
        tree = resolve_tree(config_tree.read_toml(Path(path)), Path(path).parent)
    flat_overrides = dict(parse_override(o) for o in overrides or [])
    extra = resolve_tree(config_tree.unflatten(flat_overrides), overrides_dir or Path.cwd())
    return config_tree.merge(tree, extra)
