"""A client's probe: prompts beside its training rows, laid out the same way for every strategy.

FGRPO's ``probe`` signal scores the model on a fixed per-client probe. If the probe were carved
out of the training rows only when FGRPO asks for it, FGRPO would train on fewer rows (and report
a smaller ``num-examples``) than the baselines it is compared with. So the layout is a property of
the data, not of the strategy:

- a procedural task (``data.tasks``) has prompts to spare: its probe rows are generated from the
  task's train share on a stream of their own, minus every prompt of the training pool, so no
  client trains on them and no training row is lost;
- a data source's rows are finite: ``data.probe_size`` rows of the client's partition, at most
  a tenth of each source task's rows (one from a task of 2 to 19), are held out of training for
  *every* strategy (FedAvg and FGRPO then train on the same rows). ``data.probe_size = 0`` holds
  none out, and refuses the probe signal.

Quotas are stratified by the partition's task mix (one row for every task the client holds, the
rest in proportion), so the probe mirrors what the client trains on. Everything is deterministic
in the config and partition id: the same probe every round, on every machine.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from datasets import Dataset, concatenate_datasets

from fgrpo.core.config import Config
from fgrpo.core.config_load import parse_config
from fgrpo.core.errors import ConfigError
from fgrpo.data.partitions import node_dataset, owns_data, partitioned_pool, prompt_key
from fgrpo.tasks import get_task

# A data source's probe takes at most a tenth of each of its tasks' rows (one from a task of 2-19
# rows): every strategy gives them up (FedAvg included), so the share is a validation split's, not
# the half the probe once carved.
SOURCE_SHARE = 10
# Stream of the generated probe prompts: distinct from the pool's (seed + 0) and the test stream.
PROBE_STREAM = 2_000_003


@dataclass(frozen=True)
class ClientRows:
    """What a client trains on, and the probe it is scored on (empty when data.probe_size = 0)."""

    train: Dataset
    probe: list[dict[str, Any]]


def source_cap(rows: int) -> int:
    """Probe rows a source task of ``rows`` rows can give: a tenth, and one from a small file (two
    rows or more) so that FGRPO's probe still has something to score there."""
    return max(1, rows // SOURCE_SHARE) if rows >= 2 else 0


def probe_quotas(task_counts: dict[str, int], take: int, caps: dict[str, int]) -> dict[str, int]:
    """Probe rows per task: one for every task that can give one (when ``take`` allows), the rest
    in proportion to the partition's task mix, never more than ``caps[task]`` rows of a task."""
    quota = {task: 0 for task in task_counts}
    eligible = sorted(
        (t for t, c in task_counts.items() if c > 0 and caps[t] >= 1),
        key=lambda t: (-task_counts[t], t),
    )
    for task in eligible[:take]:
        quota[task] = 1
    total = sum(task_counts.values())
    for _ in range(take - sum(quota.values())):
        open_tasks = [t for t in eligible if quota[t] < caps[t]]
        if not open_tasks:
            break
        # the task furthest below its proportional share takes the next row
        task = max(open_tasks, key=lambda t: (take * task_counts[t] / total - quota[t], t))
        quota[task] += 1
    return quota


def generated_probe(
    cfg: Config,
    task: str,
    count: int,
    partition_id: int,
    pool_prompts: frozenset[str],
    pool_count: int,
) -> list[dict[str, Any]]:
    """``count`` prompts of a procedural task's train share that are not in the training pool."""
    seed = PROBE_STREAM * (partition_id + 1) + cfg.seed
    try:  # the pool can hold at most pool_count of the generated prompts
        rows = get_task(task).generate(
            count + pool_count, seed, cfg.data.difficulty, share="train", unique=True
        )
    except ValueError as err:
        raise ConfigError(
            "data.probe_size",
            f"task {task}: too few distinct prompts beside the training "
            f"pool for a probe of {count} rows ({err})",
        ) from err
    return [row for row in rows if row_identity(row) not in pool_prompts][:count]


def row_identity(row: dict[str, Any]) -> str:
    """A problem's identity: its prompt, and for a figure task what is drawn (geometry asks the same
    question of many figures, so the text alone would take every pool figure's twins for it)."""
    return prompt_key(row) + "\x00" + str(row.get("figure") or "")


@lru_cache(maxsize=4)
def _pool_prompts(config_json: str, task: str) -> tuple[frozenset[str], int]:
    """The training pool's prompts of one task (no client may be probed on a prompt anyone trains
    on)."""
    pool = partitioned_pool(parse_config(json.loads(config_json)))
    figures = pool["figure"] if "figure" in pool.column_names else [None] * len(pool)
    keys = [
        row_identity({"prompt": p, "figure": f})
        for p, t, f in zip(pool["prompt"], pool["task"], figures, strict=True)
        if t == task
    ]
    return frozenset(keys), len(keys)


def split_client_rows(
    cfg: Config, rows: Dataset, partition_id: int, procedural: frozenset[str]
) -> ClientRows:
    """(training rows, probe) of one client; ``procedural``: the labels whose probe is generated."""
    size = cfg.data.probe_size
    if size == 0 or len(rows) == 0:
        return ClientRows(rows, [])
    by_task: dict[str, list[int]] = defaultdict(list)
    for i, task in enumerate(rows["task"]):
        by_task[task].append(i)
    counts = {task: len(indices) for task, indices in by_task.items()}
    caps = {task: size if task in procedural else source_cap(counts[task]) for task in counts}
    quotas = probe_quotas(counts, size, caps)
    rng = random.Random(cfg.seed * 1_000_003 + partition_id)
    held = sorted(
        i
        for task, indices in sorted(by_task.items())
        if task not in procedural
        for i in rng.sample(indices, quotas[task])
    )
    probe = [rows[i] for i in held]
    for task in sorted(t for t in quotas if t in procedural and quotas[t] > 0):
        prompts, pool_count = _pool_prompts(cfg.to_json(), task)
        probe.extend(generated_probe(cfg, task, quotas[task], partition_id, prompts, pool_count))
    if not held:
        return ClientRows(rows, probe)
    kept = sorted(set(range(len(rows))) - set(held))
    return ClientRows(rows.select(kept), probe)


def client_rows(cfg: Config, partition_id: int, node_config: Mapping[str, object]) -> ClientRows:
    """A client's training rows and probe: its owner's file in a deployment (every label a finite
    source), else its simulated partition of the pool (procedural tasks' probes generated)."""
    procedural = frozenset() if owns_data(node_config) else frozenset(cfg.data.tasks)
    return split_client_rows(cfg, node_dataset(cfg, node_config), partition_id, procedural)


def pooled_training_rows(cfg: Config) -> Dataset:
    """What ``centralized`` trains on: the rows the federation's clients train on, together. Without
    a data source nothing is held out and that is the whole pool; with one, the clients' training
    rows themselves (matching held-out rows back by prompt would also drop a source's other rows
    that share a prompt text, such as figure questions)."""
    if cfg.data.probe_size == 0 or not cfg.data.sources:
        return partitioned_pool(cfg)
    return concatenate_datasets(
        [
            client_rows(cfg, pid, {"partition-id": pid}).train
            for pid in range(cfg.federation.num_clients)
        ]
    )
