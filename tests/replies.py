"""Hand-built Flower reply messages, as a ClientApp would send them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from flwr.app import (
    Array,
    ArrayRecord,
    ConfigRecord,
    Message,
    MessageType,
    MetricRecord,
    RecordDict,
)
from flwr.supercore.task_identity import TaskIdentity

from fgrpo.core.protocol import SIGNALS_RECORD_KEY, task_metrics
from fgrpo.runtime.checkpoint import join_arrays, split_arrays


def _as_server_task() -> None:
    """Messages carry the creating task's identity; outside a Flower run we set one."""
    if TaskIdentity._run_id is None:
        TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, 1, 1


def reply(
    client_id: str,
    arrays: dict[str, np.ndarray],
    num_examples: int,
    reward: float,
    tasks: dict[str, tuple[float, int]] | None = None,
    **metrics: float,
) -> Message:
    """``tasks``: the per-task (signal, rollouts) an FGRPO client reports; by default the client
    holds one task, "addition" (declared by the default config), whose signal is its mean reward."""
    _as_server_task()
    content = RecordDict(
        {
            "arrays": ArrayRecord(
                {k: Array(np.asarray(v, dtype=np.float32)) for k, v in arrays.items()}
            ),
            "metrics": MetricRecord({"num-examples": num_examples, "reward": reward, **metrics}),
            SIGNALS_RECORD_KEY: ConfigRecord(
                task_metrics(tasks if tasks is not None else {"addition": (reward, 1)})
            ),
            "client": ConfigRecord({"client-id": client_id}),
        }
    )
    return Message(content=content, dst_node_id=0, message_type=MessageType.TRAIN)


def through_disk(state: dict, tmp_path: Path) -> dict:
    """What a checkpoint does to a strategy's state: JSON for the tree, npz for the arrays."""
    arrays: dict[str, np.ndarray] = {}
    tree = json.dumps(split_arrays(state, arrays, "s"))
    np.savez(tmp_path / "a.npz", **arrays)
    with np.load(tmp_path / "a.npz", allow_pickle=False) as loaded:
        return join_arrays(json.loads(tree), loaded)
