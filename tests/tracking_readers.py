"""Read back what fgrpo.runtime.tracking logged, with each tool's own reader: TensorBoard's event
accumulator, the MLflow client on the store, and W&B's record protobufs from its offline files."""

from __future__ import annotations

import json
import struct
from collections import defaultdict
from pathlib import Path
from typing import Any

from mlflow.tracking import MlflowClient
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from wandb.proto import wandb_internal_pb2

ALL = {"scalars": 0, "images": 0, "tensors": 0}  # keep every event, not a sample


def tensorboard(log_dir: Path) -> EventAccumulator:
    return EventAccumulator(str(log_dir), size_guidance=ALL).Reload()


def tb_steps(events: EventAccumulator, tag: str) -> list[int]:
    return [e.step for e in events.Scalars(tag)]


def mlflow_client(store: Path) -> MlflowClient:
    return MlflowClient(f"sqlite:///{store / 'mlflow.db'}")


def mlflow_steps(client: MlflowClient, run_id: str, key: str) -> list[int]:
    return sorted(m.step for m in client.get_metric_history(run_id, key))


def wandb_records(path: Path) -> list[wandb_internal_pb2.Record]:
    """Every record of one offline ``run-<id>.wandb`` file: W&B writes the LevelDB log format
    (32 KiB blocks of CRC, length, type headers) after a 7-byte ``:W&B`` header."""
    data, block, records, pending, pos = path.read_bytes(), 32768, [], b"", 7
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # a block's tail too short for a header is padding
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if length == 0 and kind == 0:
            pos += left
            continue
        chunk, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        pending = chunk if kind in (1, 2) else pending + chunk  # full/first; middle/last
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
    return records


def wandb_runs(run_dir: Path) -> dict[str, Any]:
    """Per W&B run id: its offline files, config, group, project, and every history row."""
    runs: dict[str, Any] = defaultdict(lambda: {"files": 0, "config": {}, "history": []})
    for path in sorted(run_dir.glob("wandb/offline-run-*/run-*.wandb")):
        for record in wandb_records(path):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                run = runs[record.run.run_id]
                run["files"] += 1
                run["group"], run["project"] = record.run.run_group, record.run.project
                run["config"].update(
                    {i.key: json.loads(i.value_json) for i in record.run.config.update}
                )
            elif kind == "history":
                row = {i.key or "/".join(i.nested_key): i.value_json for i in record.history.item}
                run["history"].append(row)
    return dict(runs)


def wandb_steps(history: list[dict[str, str]], key: str, axis: str = "round") -> list[int]:
    return sorted(int(float(row[axis])) for row in history if key in row)
