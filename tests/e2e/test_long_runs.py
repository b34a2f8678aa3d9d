"""A worker process hosts many client rounds on one cached model: it must stay the same model."""

from __future__ import annotations

import sys

import pytest
import torch

from fgrpo.client.grpo import train_locally
from fgrpo.data.partitions import client_partition
from fgrpo.models.lora import fresh_adapter_model
from fgrpo.runtime.configs import load_config
from fgrpo.tasks.rewards import reward_functions

TINY = [
    "model.name=tiny-random",
    'data.tasks=["sorting"]',
    "data.train_size=32",
    "data.test_size=4",
    "grpo.max_completion_length=4",
    "grpo.per_device_train_batch_size=2",
    "grpo.num_generations=2",
    "federation.num_clients=1",
]


def hook_count(model: torch.nn.Module) -> int:
    return sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
        for m in model.modules()
    )


def frames() -> int:
    depth, frame = 0, sys._getframe()
    while frame is not None:
        depth, frame = depth + 1, frame.f_back
    return depth


def forward_depth(model: torch.nn.Module) -> int:
    """Python frames between this test and the input embedding during one forward pass."""
    seen: list[int] = []
    handle = model.get_input_embeddings().register_forward_pre_hook(
        lambda *_: seen.append(frames())
    )
    try:
        with torch.no_grad():
            model(input_ids=torch.tensor([[1, 2, 3]]))
    finally:
        handle.remove()
    return seen[0] - frames()


@pytest.mark.parametrize(
    "rounds",
    [pytest.param(3, id="3-rounds"), pytest.param(60, id="60-rounds", marks=pytest.mark.slow)],
)
def test_hosting_client_rounds_leaves_forward_depth_and_hooks_constant(rounds: int):
    cfg = load_config(None, TINY)
    model, tokenizer = fresh_adapter_model(cfg.model, seed=0)  # as the per-process cache holds it
    dataset, rewards = client_partition(cfg, 0), reward_functions(cfg)
    depth, hooks, forwards = (
        forward_depth(model),
        hook_count(model),
        [m for m in model.modules() if "forward" in vars(m)],
    )
    for rnd in range(rounds):
        train_locally(model, tokenizer, dataset, rewards, cfg, seed=rnd, steps=1)
        assert (forward_depth(model), hook_count(model)) == (depth, hooks), f"after round {rnd + 1}"
    assert [m for m in model.modules() if "forward" in vars(m)] == forwards


@pytest.mark.slow
def test_two_workers_host_eight_clients_for_sixty_rounds(tmp_path):
    """~240 client rounds per worker: this crashed with RecursionError before the model was kept
    constant."""
    import json

    from fgrpo.runtime.runner import run_experiment

    cfg = load_config(
        None,
        [
            "model.name=tiny-random",
            'data.tasks=["sorting", "addition"]',
            "data.train_size=64",
            "data.test_size=4",
            "grpo.max_completion_length=4",
            "grpo.per_device_train_batch_size=4",
            "grpo.num_generations=2",
            "federation.num_clients=8",
            "federation.rounds=60",
            "federation.local_steps=1",
            "federation.client_cpus=1",
            "eval.every=0",
            "strategy.name=fedavg",
        ],
    )
    summary = run_experiment(cfg, tmp_path)
    assert summary["rounds"] == 60 and summary["failures"] == 0
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert all(len(r["clients"]) == 8 for r in records)
    assert "eval" in records[-1] and all(
        "eval" not in r for r in records[:-1]
    )  # eval.every = 0: the last only
    assert summary["final_eval"] is not None
