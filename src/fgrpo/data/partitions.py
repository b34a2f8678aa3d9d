"""Training pool, held-out test sets, and non-IID partitions via flwr-datasets.

Everything is a pure function of the config (and seed), so the server and every
client process rebuild exactly the same partitions without sending data around.

The pool holds the procedural tasks' prompts and every ``[[data.sources]]``
dataset's rows; the ``task`` column (task or source name) is the label that the
Dirichlet and pathological partitioners split by.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from datasets import Dataset
from flwr_datasets.partitioner import (
    DirichletPartitioner,
    ExponentialPartitioner,
    IidPartitioner,
    Partitioner,
    PathologicalPartitioner,
)

from fgrpo.core.config import Config, SourceConfig
from fgrpo.core.config_load import parse_config
from fgrpo.core.errors import ConfigError
from fgrpo.data.node_data import NODE_DATA_CONFIG, source_file
from fgrpo.tasks import get_task
from fgrpo.tasks.reward_probe import batch_shape, check_columns, probe_rewards
from fgrpo.tasks.rewards import function_weights, reward_functions, reward_ranges
from fgrpo.tasks.sources import DataError, evaluation_rows, load_source

TRAIN_SEED_OFFSET = 0
# Test prompts come from the tasks' fixed test share (fgrpo.tasks.split), drawn by one stream
# whatever the run's seed: every run of every seed is scored on the same prompts (paired
# comparisons), and a smaller test_size is a prefix of a larger one.
TEST_STREAM = 1_000_003


def prompt_key(row: dict[str, Any]) -> str:
    return str(row["prompt"][-1]["content"])


def task_names(cfg: Config) -> list[str]:
    """Every task label of the run: procedural tasks, then data sources, in config order."""
    return [*cfg.data.tasks, *(s.name for s in cfg.data.sources)]


def task_test_set(name: str, size: int, difficulty: int) -> list[dict[str, Any]]:
    """``size`` distinct prompts of a procedural task's test share."""
    try:
        return get_task(name).generate(size, TEST_STREAM, difficulty, share="test", unique=True)
    except ValueError as err:  # the test share of a small problem space is exhausted
        raise ConfigError("data.test_size", str(err)) from err


def test_sets(cfg: Config) -> dict[str, list[dict[str, Any]]]:
    """Held-out prompts per task (and per data source) for server-side evaluation."""
    held_out = {
        name: task_test_set(name, cfg.data.test_size, cfg.data.difficulty)
        for name in cfg.data.tasks
    }
    for source in cfg.data.sources:
        _, test = load_source(source, cfg.seed, cfg.data.test_size)
        if test:
            held_out[source.name] = evaluation_rows(source, test)
    return held_out


def _unify_columns(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Give every row every column (None where absent), so one Arrow table can hold them.

    A column whose plain values differ in type across tasks (an int ``answer`` in one
    source, text in another) is stored as text.
    """
    columns: dict[str, None] = {}
    kinds: dict[str, set[type]] = {}
    for row in rows:
        for key, value in row.items():
            columns.setdefault(key)
            if value is not None:
                kinds.setdefault(key, set()).add(type(value))
    scalar = (str, int, float, bool)
    as_text = {k for k, t in kinds.items() if len(t) > 1 and all(issubclass(x, scalar) for x in t)}
    return [
        {
            k: (str(row[k]) if k in as_text and row.get(k) is not None else row.get(k))
            for k in columns
        }
        for row in rows
    ]


def training_pool(cfg: Config) -> Dataset:
    """All training prompts of the federation, tasks interleaved; none from a test share."""
    rows: list[dict[str, Any]] = []
    if cfg.data.tasks:
        per_task = -(-cfg.data.train_size // len(cfg.data.tasks))
        for name in cfg.data.tasks:
            try:  # each prompt once: duplicates would blur partitions and counts
                rows.extend(
                    get_task(name).generate(
                        per_task,
                        cfg.seed + TRAIN_SEED_OFFSET,
                        cfg.data.difficulty,
                        share="train",
                        unique=True,
                    )
                )
            except ValueError as err:
                raise ConfigError("data.train_size", str(err)) from err
    for source in cfg.data.sources:
        train, _ = load_source(source, cfg.seed, cfg.data.test_size)
        rows.extend(train)
    try:
        pool = Dataset.from_list(_unify_columns(rows))
    except Exception as err:  # noqa: BLE001 - Arrow cannot hold the mixture
        raise DataError(
            "data.sources", f"the tasks' columns cannot share one table: {err}"
        ) from err
    return pool.shuffle(seed=cfg.seed)


def make_partitioner(cfg: Config, pool_size: int | None = None) -> Partitioner:
    n, d = cfg.federation.num_clients, cfg.data
    pool_size = pool_size or d.train_size
    if d.partition == "iid":
        return IidPartitioner(num_partitions=n)
    if d.partition == "dirichlet":
        # A small minimum keeps extreme alphas (0.1) feasible on laptop-sized pools.
        min_size = max(1, min(10, pool_size // (4 * n)))
        return DirichletPartitioner(
            num_partitions=n,
            partition_by="task",
            alpha=d.alpha,
            min_partition_size=min_size,
            seed=cfg.seed,
        )
    if d.partition == "pathological":
        return PathologicalPartitioner(
            num_partitions=n,
            partition_by="task",
            num_classes_per_partition=min(d.tasks_per_client, len(task_names(cfg))),
            class_assignment_mode="first-deterministic",
            seed=cfg.seed,
        )
    if d.partition == "size-skew":
        return ExponentialPartitioner(num_partitions=n)
    raise ValueError(f"data.partition: unknown partition {d.partition!r}")


@lru_cache(maxsize=4)
def _partitioner_for(config_json: str) -> Partitioner:
    cfg = parse_config(json.loads(config_json))  # validated where it was loaded
    pool = training_pool(cfg)
    partitioner = make_partitioner(cfg, len(pool))
    partitioner.dataset = pool
    return partitioner


def partitioned_pool(cfg: Config) -> Dataset:
    """The pool the partitions are cut from (built once per process and config)."""
    return _partitioner_for(cfg.to_json()).dataset


def client_partition(cfg: Config, partition_id: int) -> Dataset:
    """This client's private training prompts (deterministic in config and id)."""
    if not 0 <= partition_id < cfg.federation.num_clients:
        raise ValueError(f"partition id {partition_id} outside 0..{cfg.federation.num_clients - 1}")
    partitioner = _partitioner_for(cfg.to_json())  # data errors surface here, unchanged
    rows, clients = len(partitioner.dataset), cfg.federation.num_clients
    if rows < clients:  # flwr-datasets would report an index out of range, not the cause
        raise ConfigError(
            "federation.num_clients",
            f"{rows} training rows cannot be split among {clients} clients; "
            "use fewer clients or add data",
        )
    try:
        partition = partitioner.load_partition(partition_id)
    except (
        ValueError,
        IndexError,
    ) as err:  # Dirichlet cannot meet the minimum size; fewer rows than clients
        raise ConfigError(
            "data.partition",
            f"{cfg.data.partition} partitioning failed: {err} "
            "(more data, fewer clients or a larger data.alpha help)",
        ) from err
    if len(partition) == 0:
        raise ConfigError(
            "data.partition",
            f"client {partition_id} gets no data under {cfg.data.partition!r} "
            f"with {cfg.federation.num_clients} clients; add data (data.train_size) or use fewer clients",
        )
    return partition


# Node-config keys of a deployed SuperNode that trains on its owner's own file
# (data-config: a file describing it as a data source, fgrpo.data.node_data).
NODE_DATA_PATH, NODE_DATA_TASK = "data-path", "data-task"


def owns_data(node_config: Mapping[str, object]) -> bool:
    """Whether a node trains on its owner's file (a deployment), not on a simulated partition."""
    return bool(node_config.get(NODE_DATA_PATH) or node_config.get(NODE_DATA_CONFIG))


def own_source(cfg: Config, node_config: Mapping[str, object]) -> SourceConfig:
    """The source a node that ``owns_data`` reads its file as."""
    path, task = str(node_config.get(NODE_DATA_PATH, "")), str(node_config.get(NODE_DATA_TASK, ""))
    if node_config.get(NODE_DATA_CONFIG):
        return source_file(str(node_config[NODE_DATA_CONFIG]), task, task_names(cfg), path)
    return node_source(cfg, path, task)


def node_training_config(cfg: Config, node_config: Mapping[str, object]) -> Config:
    """The run's config as this node trains it. With a data-config file, its own source is the
    only task: its rows are scored, probed and ranged by that source's reward functions and
    reward_min/reward_max (``grpo.reward_weights``, when set, must fit them); else the run's."""
    if not node_config.get(NODE_DATA_CONFIG):
        return cfg
    return dataclasses.replace(
        cfg, data=dataclasses.replace(cfg.data, tasks=[], sources=[own_source(cfg, node_config)])
    )


def node_source(cfg: Config, path: str, task: str) -> SourceConfig:
    """How a node reads its own file: as rows of the run's task label ``task``.

    A ``[[data.sources]]`` name lends its columns, answer format, checker and rewards (its
    path, which is where the server reads it, is replaced); a procedural task of
    ``data.tasks`` reads columns ``prompt`` and ``answer`` (the gold answer its reward checks).
    Every row trains: the server holds the held-out tests. Without ``task``, the run's only label.
    """
    labels = task_names(cfg)
    if not task and len(labels) == 1:
        task = labels[0]
    if task not in labels:
        raise DataError(
            f"node config {NODE_DATA_TASK}",
            f"name the task of this node's data, one of {', '.join(labels)}; got {task!r}",
        )
    own = {
        "path": path,
        "hub": "",
        "test_path": "",
        "test_split": "",
        "train_size": 0,
        "test_size": 0,
    }
    for source in cfg.data.sources:
        if source.name == task:
            return dataclasses.replace(source, **own)
    return SourceConfig(name=task, answer_format="plain", checker="exact", **own)


def node_dataset(cfg: Config, node_config: Mapping[str, object]) -> Dataset:
    """The dataset this node trains on: its owner's file (node config ``data-path`` or
    ``data-config``) in a deployment, else its partition of the configured pool (``partition-id``,
    simulation)."""
    if not owns_data(node_config):
        if (
            "partition-id" not in node_config
        ):  # a deployed node that forgot its data would train on another's
            raise ConfigError(
                f"node config {NODE_DATA_PATH}",
                f"this node has neither {NODE_DATA_PATH} (its owner's "
                f"file; or {NODE_DATA_CONFIG}) nor partition-id (a simulated partition); set one in --node-config",
            )
        return client_partition(cfg, int(node_config["partition-id"]))  # type: ignore[call-overload]
    rows, _ = load_source(own_source(cfg, node_config), cfg.seed, 0)
    return Dataset.from_list(_unify_columns(rows))


def task_counts(cfg: Config) -> list[dict[str, int]]:
    """Per-client count of prompts of each task (rows: clients, columns: task labels)."""
    names = task_names(cfg)
    counts = []
    for pid in range(cfg.federation.num_clients):
        found = Counter(client_partition(cfg, pid)["task"])
        counts.append({name: found.get(name, 0) for name in names})
    return counts


def check_data(cfg: Config) -> None:
    """Fail before training starts: build the pool, the test sets and every partition, and
    probe each reward function on one GRPO step's batch of every task (fgrpo.tasks.reward_probe)."""

    test_sets(cfg)
    for pid in range(cfg.federation.num_clients):
        client_partition(cfg, pid)
    pool = partitioned_pool(cfg)
    funcs, weights, ranges = reward_functions(cfg), function_weights(cfg), reward_ranges(cfg)
    for source in cfg.data.sources:
        check_columns(funcs, source.name, load_source(source, cfg.seed, cfg.data.test_size)[0])
    labels = pool["task"]
    prompts, generations = batch_shape(cfg.grpo_settings())
    for name in task_names(cfg):
        rows = [i for i, t in enumerate(labels) if t == name]
        step = (
            [rows[k % len(rows)] for k in range(prompts)] if rows else []
        )  # a small task's rows repeat, as in TRL
        probe_rows = list(pool.select(step))
        probe_rewards(funcs, weights, probe_rows, generations, ranges[name])
