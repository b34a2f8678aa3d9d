"""Every strategy, FGRPO variant and RL preset completes a 2-client x 2-round run with tiny-random.

The default suite runs a representative subset (fgrpo, fedprox, scaffold); the rest are
marked slow (`pytest -m slow`, `make test-all`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fgrpo.config import load_config
from fgrpo.experiments.runner import run_experiment
from fgrpo.rl import RL_PRESETS
from fgrpo.server.strategies import STRATEGIES

# Sorting gives partial credit, so even a random policy sees reward variance (a GRPO signal).
SMALL = ["model.name=tiny-random", 'data.tasks=["sorting", "addition"]', "data.train_size=64",
         "data.test_size=8", "grpo.max_completion_length=16", "federation.num_clients=2",
         "federation.rounds=2", "federation.local_steps=2"]
FAST = {"fgrpo", "fedprox", "scaffold"}
STATEFUL = {"scaffold", "local-only"}  # the client's own state must persist across rounds


def case(name: str, *overrides: str, fast: bool = False):
    marks = () if fast else (pytest.mark.slow,)
    return pytest.param(name, list(overrides), marks=marks, id="-".join([name, *[o.split("=")[-1] for o in overrides]]))


CASES = (
    [case(name, fast=name in FAST) for name in STRATEGIES]
    + [case("fgrpo", "strategy.gain=zscore"), case("fgrpo", "strategy.gain=difference"),
       case("fgrpo", "strategy.signal=probe"), case("fgrpo-adam", "strategy.signal=probe")]
    + [case("fedavg", f"rl.algorithm={algorithm}") for algorithm in RL_PRESETS]
)


@pytest.mark.parametrize(("strategy", "overrides"), CASES)
def test_two_clients_two_rounds(strategy: str, overrides: list[str], tmp_path: Path):
    cfg = load_config(None, SMALL + [f"strategy.name={strategy}", *overrides])
    summary = run_experiment(cfg, tmp_path)

    assert summary["strategy"] == strategy and summary["rounds"] == 2 and summary["failures"] == 0
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["round"] for r in records] == [1, 2]
    expected_rows = 1 if strategy == "centralized" else 2
    for record in records:
        rows = record["clients"]
        assert len(rows) == expected_rows
        weights = [row["weight"] for row in rows]
        assert all(np.isfinite(w) and w >= 0 for w in weights) and sum(weights) == pytest.approx(1.0)
        assert all(np.isfinite(row["reward"]) for row in rows)
        assert set(record["eval"]) >= {"sorting", "addition", "macro"}
    if strategy in STATEFUL:
        assert [r["train"]["client-state-rounds"] for r in records] == [1.0, 2.0]
    if strategy.startswith("fgrpo"):
        assert all(row["gain"] == 0.0 for row in records[0]["clients"])
        assert all(row["baseline"] is not None for r in records for row in r["clients"])

    settings = json.loads((tmp_path / "grpo_settings.json").read_text())
    assert settings["algorithm"] == cfg.rl.algorithm
    for key, value in RL_PRESETS[cfg.rl.algorithm].items():
        assert settings["settings"][key] == settings["overrides"].get(key, value), key
    for name in ("config.toml", "versions.json", "summary.json", "plots/accuracy.png", "plots/reward.png",
                 "final/adapter/adapter_config.json", "final/adapter/adapter_model.safetensors"):
        assert (tmp_path / name).is_file(), name
