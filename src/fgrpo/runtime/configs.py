"""Loading a run's config, checked against everything that names its values.

fgrpo.core.config checks each value against its field; this module adds what only the layers
above it know: that ``strategy.name`` is in the strategy registry (and takes
``strategy.server_lr`` and ``privacy.dp``), that every ``grpo.*`` key is a field of TRL's
``GRPOConfig``, and that the data (tasks, sources, reward functions and their weights) exists.
Every command and the ServerApp load configs through here, so a typo costs a second instead of a
half-finished run.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from fgrpo.core.config import Config
from fgrpo.core.config_load import parse_config, read_config_tree, tree_from_flat
from fgrpo.core.errors import ConfigError
from fgrpo.server.strategies import check_strategy
from fgrpo.tasks.rewards import check_reward_weights
from fgrpo.tasks.sources import validate_data_config


def validate_grpo_keys(grpo: dict[str, Any]) -> None:
    """Every grpo.* key must be a TRL GRPOConfig field (checked against TRL itself)."""
    if not grpo:
        return
    # deferred: TRL takes seconds to import; a config without grpo.* keys never needs it
    from trl import GRPOConfig

    fields = {f.name for f in dataclasses.fields(GRPOConfig)}
    for key in grpo:
        if key not in fields:
            raise ConfigError(f"grpo.{key}", "not a field of TRL's GRPOConfig")


def config_from_dict(tree: dict[str, Any], *, local_files: bool = True) -> Config:
    """``local_files=False``: data paths are another machine's (a deployed client's view)."""
    cfg = parse_config(tree)
    validate_grpo_keys(cfg.grpo)
    check_strategy(cfg)
    validate_data_config(cfg.data, local_files)
    check_reward_weights(cfg)
    return cfg


def config_from_flat(flat: dict[str, Any]) -> Config:
    """A Config from Flower's flattened run_config."""
    return config_from_dict(tree_from_flat(flat))


def load_config(
    path: str | Path | None = None,
    overrides: list[str] | None = None,
    *,
    overrides_dir: Path | None = None,
    local_files: bool = True,
) -> Config:
    """TOML file (optional) plus ``key=value`` overrides, fully validated (see
    fgrpo.core.config.read_config_tree for where paths resolve)."""
    tree = read_config_tree(path, overrides, overrides_dir)
    return config_from_dict(tree, local_files=local_files)
