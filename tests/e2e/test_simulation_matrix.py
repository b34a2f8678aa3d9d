"""Every strategy, FGRPO variant and RL preset completes a 2-client x 2-round run with tiny-random,
and does what its name says: the adapter moves, FedProx pulls towards the global adapter,
SCAFFOLD's correction is non-zero after the first round, local-only evaluates each client.

The default suite runs a representative subset (fgrpo, fedprox, scaffold); the rest are
marked slow (`pytest -m slow`, `make test-all`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from fgrpo.core.rl import RL_PRESETS
from fgrpo.runtime.configs import load_config
from fgrpo.runtime.runner import run_experiment
from fgrpo.server.strategies import STRATEGIES

# The shipped reasoner, not tiny-random: a random policy often ties every completion of a group
# (no GRPO advantage, so no update), which made "the adapter moves" depend on the seed.
SMALL = [
    "model.name=tiny",
    'data.tasks=["sorting", "addition"]',
    "data.train_size=64",
    "data.test_size=8",
    "grpo.max_completion_length=16",
    "federation.num_clients=2",
    "federation.rounds=2",
    "federation.local_steps=2",
    "grpo.per_device_train_batch_size=8",
]  # 2 prompts per step: sized for 32 prompts per client
FAST = {"fgrpo", "fedprox", "scaffold"}
STATEFUL = {"scaffold", "local-only"}  # the client's own state must persist across rounds


def case(name: str, *overrides: str, fast: bool = False):
    marks = () if fast else (pytest.mark.slow,)
    return pytest.param(
        name,
        list(overrides),
        marks=marks,
        id="-".join([name, *[o.split("=")[-1] for o in overrides]]),
    )


CASES = (
    [case(name, fast=name in FAST) for name in STRATEGIES]
    + [
        case("fgrpo", "strategy.gain=zscore"),
        case("fgrpo", "strategy.gain=difference"),
        case("fgrpo", "strategy.signal=probe"),
        case("fgrpo-adam", "strategy.signal=probe"),
        case("fgrpo", "strategy.gain=ratio"),
        case("fgrpo", "strategy.signal=probe", "strategy.gain=delta"),
        case("fgrpo", "strategy.baseline_at=client"),
    ]
    # 32 tokens: the reasoner's answers fit, so DAPO's masking of truncated completions leaves a
    # loss
    + [
        case("fedavg", f"rl.algorithm={algorithm}", "grpo.max_completion_length=32")
        for algorithm in RL_PRESETS
    ]
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
        assert all(np.isfinite(w) and w >= 0 for w in weights) and sum(weights) == pytest.approx(
            1.0
        )
        assert all(np.isfinite(row["reward"]) for row in rows)
        assert set(record["eval"]) >= {"sorting", "addition", "macro"}
        if "strategy.baseline_at=client" in overrides:  # per-task rewards stay on the client
            assert "reward" not in record and all("task-reward" not in row for row in rows)
        else:  # every strategy's round reward, centralized's too: a fraction of the tasks' ranges
            assert 0 <= record["reward"]["normalised"] <= 1 and set(
                record["reward"]["by_task"]
            ) <= {"sorting", "addition"}
    if strategy in STATEFUL:
        assert [r["train"]["client-state-rounds"] for r in records] == [1.0, 2.0]
    if (
        strategy.startswith("fgrpo") and "strategy.gain=delta" not in overrides
    ):  # delta needs no history
        assert all(row["gain"] == 0.0 for row in records[0]["clients"])
    if strategy.startswith("fgrpo") and "strategy.baseline_at=client" not in overrides:
        assert all(
            row["tasks"] and all(t["baseline"] is not None for t in row["tasks"].values())
            for record in records
            for row in record["clients"]
        )  # baselines per (client, task)

    if (
        strategy == "local-only"
    ):  # the global adapter stays put; each client's own adapter is evaluated
        for record in records:
            local = record["local"]
            assert sorted(local["clients"]) == ["client-0", "client-1"]
            assert all(0.0 <= c["own-mix"] <= 1.0 for c in local["clients"].values())
            assert record["eval"] == local["mean"]["global"]
        assert summary["final_local"] == records[-1]["local"]
    elif (
        strategy != "centralized"
    ):  # B starts at zero: a non-zero B means training moved the adapter
        adapter = load_file(str(tmp_path / "final" / "adapter" / "adapter_model.safetensors"))
        assert max(float(np.abs(v).max()) for k, v in adapter.items() if "lora_B" in k) > 0
    if strategy != "centralized":
        assert all(r["train"]["update-norm"] > 0 for r in records)  # every round's clients moved
    if strategy == "scaffold":  # c = c_i = 0 in a client's first round, then a real correction
        norms = [r["train"]["scaffold-correction-norm"] for r in records]
        assert norms[0] == 0.0 and np.isfinite(norms[1]) and norms[1] > 0

    settings = json.loads((tmp_path / "grpo_settings.json").read_text())
    assert settings["algorithm"] == cfg.rl.algorithm
    for key, value in RL_PRESETS[cfg.rl.algorithm].items():
        assert settings["settings"][key] == settings["overrides"].get(key, value), key
    for name in (
        "config.toml",
        "versions.json",
        "summary.json",
        "plots/accuracy.png",
        "plots/reward.png",
        "final/adapter/adapter_config.json",
        "final/adapter/adapter_model.safetensors",
    ):
        assert (tmp_path / name).is_file(), name


def test_fedprox_with_mu_ends_closer_to_the_global_adapter_than_without(tmp_path: Path):
    """Same seed, same data: only μ differs, so the clients' distance ‖θ_k − θ‖ must shrink with μ >
    0."""
    norms = {}
    for mu in (0.0, 1e3):
        cfg = load_config(
            None, SMALL + ["strategy.name=fedprox", f"strategy.proximal_mu={mu}", "eval.every=0"]
        )
        run_experiment(cfg, tmp_path / str(mu))
        records = [
            json.loads(line)
            for line in (tmp_path / str(mu) / "metrics.jsonl").read_text().splitlines()
        ]
        norms[mu] = [r["train"]["update-norm"] for r in records]
    assert all(n > 0 for n in norms[1e3])
    assert all(prox < free for prox, free in zip(norms[1e3], norms[0.0], strict=True)), norms
