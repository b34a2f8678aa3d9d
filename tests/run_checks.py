"""What every finished run directory must hold, shared by the whole-run tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fgrpo.runtime.run_setup import RUN_ENTRIES

ROOT = Path(__file__).resolve().parents[1]
# The smallest whole run: sorting gives partial credit, so even a random policy sees reward
# variance (a GRPO signal).
SMALL = [
    "model.name=tiny-random",
    'data.tasks=["sorting", "addition"]',
    "data.train_size=64",
    "data.test_size=8",
    "grpo.max_completion_length=16",
]


def check_run_dir(out: Path, rounds: int, clients: int) -> list[dict]:
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == rounds
    records = [json.loads(line) for line in lines]
    for rnd, record in enumerate(records, start=1):
        assert record["round"] == rnd
        assert len(record["clients"]) == clients
        weights = [c["weight"] for c in record["clients"]]
        assert all(w >= 0 for w in weights) and sum(weights) == pytest.approx(1.0)
        for c in record["clients"]:
            assert {"client-id", "num-examples", "reward", "baseline", "gain", "weight"} <= set(c)
            assert c["num-examples"] > 0 and np.isfinite(c["reward"])
        assert (
            0 <= record["reward"]["normalised"] <= 1
        )  # the round's reward, as a fraction of each task's range
        assert set(record["reward"]["by_task"]) <= {"sorting", "addition"}
        assert set(record["eval"]) >= {"sorting", "addition", "macro"}
        assert (
            0 < record["train"]["generate-seconds"] < record["train"]["train-seconds"]
        )  # rollouts: part of a step
    assert len({c["client-id"] for r in records for c in r["clients"]}) == clients
    assert {
        p.name for p in out.iterdir()
    } <= RUN_ENTRIES  # all that --overwrite may remove, and no more
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rounds"] == rounds and summary["initial_eval"] is not None
    for name in (
        "config.toml",
        "versions.json",
        "plots/accuracy.png",
        "plots/reward.png",
        "final/adapter/adapter_config.json",
        "final/adapter/adapter_model.safetensors",
    ):
        assert (out / name).is_file(), name
    return records
