"""Training pool, held-out test sets, and non-IID partitions via flwr-datasets.

Everything is a pure function of the config (and seed), so the server and every
client process rebuild exactly the same partitions without sending data around.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from datasets import Dataset
from flwr_datasets.partitioner import (
    DirichletPartitioner,
    ExponentialPartitioner,
    IidPartitioner,
    PathologicalPartitioner,
    Partitioner,
)

from .config import Config
from .tasks import get_task

TRAIN_SEED_OFFSET = 0
TEST_SEED_OFFSET = 1_000_003  # a different stream: test prompts are never training prompts


def prompt_key(row: dict[str, Any]) -> str:
    return str(row["prompt"][-1]["content"])


def test_sets(cfg: Config) -> dict[str, list[dict[str, Any]]]:
    """Held-out prompts per task for server-side evaluation."""
    return {
        name: get_task(name).generate(cfg.data.test_size, cfg.seed + TEST_SEED_OFFSET, cfg.data.difficulty)
        for name in cfg.data.tasks
    }


def training_pool(cfg: Config) -> Dataset:
    """All training prompts of the federation, tasks interleaved, test prompts removed."""
    held_out = {prompt_key(r) for rows in test_sets(cfg).values() for r in rows}
    per_task = -(-cfg.data.train_size // len(cfg.data.tasks))
    rows = []
    for name in cfg.data.tasks:
        candidates = get_task(name).generate(per_task * 2, cfg.seed + TRAIN_SEED_OFFSET, cfg.data.difficulty)
        rows.extend([r for r in candidates if prompt_key(r) not in held_out][:per_task])
    return Dataset.from_list(rows).shuffle(seed=cfg.seed)


def make_partitioner(cfg: Config) -> Partitioner:
    n, d = cfg.federation.num_clients, cfg.data
    if d.partition == "iid":
        return IidPartitioner(num_partitions=n)
    if d.partition == "dirichlet":
        # A small minimum keeps extreme alphas (0.1) feasible on laptop-sized pools.
        min_size = max(1, min(10, cfg.data.train_size // (4 * n)))
        return DirichletPartitioner(
            num_partitions=n, partition_by="task", alpha=d.alpha, min_partition_size=min_size, seed=cfg.seed
        )
    if d.partition == "pathological":
        return PathologicalPartitioner(
            num_partitions=n,
            partition_by="task",
            num_classes_per_partition=min(d.tasks_per_client, len(d.tasks)),
            class_assignment_mode="first-deterministic",
            seed=cfg.seed,
        )
    if d.partition == "size-skew":
        return ExponentialPartitioner(num_partitions=n)
    raise ValueError(f"data.partition: unknown partition {d.partition!r}")


@lru_cache(maxsize=4)
def _partitioner_for(config_json: str) -> Partitioner:
    from .config import config_from_dict
    import json

    cfg = config_from_dict(json.loads(config_json))
    partitioner = make_partitioner(cfg)
    partitioner.dataset = training_pool(cfg)
    return partitioner


def client_partition(cfg: Config, partition_id: int) -> Dataset:
    """This client's private training prompts (deterministic in config and id)."""
    if not 0 <= partition_id < cfg.federation.num_clients:
        raise ValueError(f"partition id {partition_id} outside 0..{cfg.federation.num_clients - 1}")
    return _partitioner_for(cfg.to_json()).load_partition(partition_id)


def task_counts(cfg: Config) -> list[dict[str, int]]:
    """Per-client count of prompts of each task (rows: clients)."""
    counts = []
    for pid in range(cfg.federation.num_clients):
        tasks = client_partition(cfg, pid)["task"]
        counts.append({name: tasks.count(name) for name in cfg.data.tasks})
    return counts
