"""A deployed SuperNode's own data source, described in a TOML file its owner writes.

Node config ``data-config`` names the file; it holds one ``[source]`` table with the fields of a
``[[data.sources]]`` table (fgrpo.core.config.SourceConfig)::

    [source]
    name = "gsm8k"                    # the run's task label these rows train as (or data-task)
    path = "train.jsonl"              # relative paths start at this file's folder
    prompt_column = "question"
    answer_format = "gsm8k"
    rewards = ["my_rewards.py:score"] # empty: the checker's 0/1 accuracy

so an owner configures columns, answer format and reward functions on the node itself, never as
JSON text in the server's run config. The node then trains with its own source only
(fgrpo.data.partitions.node_training_config).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from fgrpo.core.config import SourceConfig
from fgrpo.core.config_paths import resolve_source
from fgrpo.core.config_tree import read_toml
from fgrpo.core.config_values import build
from fgrpo.core.errors import ConfigError
from fgrpo.tasks.sources import validate_source_fields

NODE_DATA_CONFIG = "data-config"
# What a node does not read: the server holds the held-out tests, and every row of the file trains.
NODE_ONLY = {"hub": "", "test_path": "", "test_split": "", "train_size": 0, "test_size": 0}


def source_file(file: str, task: str, labels: list[str], path: str = "") -> SourceConfig:
    """The node's source from its data-config ``file``: trained as ``task`` (node config
    data-task) or the file's ``name``, which must be one of the run's ``labels``; ``path`` (node
    config data-path) replaces the file's own."""
    key = f"node config {NODE_DATA_CONFIG}"
    location = Path(file).expanduser()
    if not location.is_file():
        raise ConfigError(key, f"file not found: {location}")
    doc = read_toml(location)
    if set(doc) != {"source"} or not isinstance(doc["source"], dict):
        raise ConfigError(
            f"{location}", "expected one [source] table (the fields of a [[data.sources]] table)"
        )
    table = resolve_source(doc["source"], location.resolve().parent)
    source = build(
        SourceConfig, {**table, **({"path": path} if path else {})}, f"{location}: source."
    )
    label = task or source.name
    if label not in labels:
        raise ConfigError(
            f"{location}: source.name",
            f"name the run's task label these rows train as "
            f"(or node config data-task), one of {', '.join(labels)}; got {label!r}",
        )
    source = dataclasses.replace(source, name=label, **NODE_ONLY)
    validate_source_fields(source, f"{location}: source")
    return source
