"""federation.optimizer_state = keep: a client's AdamW survives its rounds, so two rounds of K
steps train the adapter exactly as one trainer run of 2K steps does (same seed and batches);
with reset they do not. TRL's real trainer and AdamW throughout."""

import numpy as np
import pytest
import torch
from datasets import Dataset
from flwr.app import RecordDict
from transformers import TrainerCallback

from fgrpo.client.grpo import train_locally
from fgrpo.client.optimizer_state import STATE_KEY, KeptOptimizer
from fgrpo.client.persistence import StateStore
from fgrpo.core.errors import ConfigError
from fgrpo.data.partitions import client_partition
from fgrpo.models.lora import fresh_adapter_model
from fgrpo.models.transport import adapter_state
from fgrpo.runtime.configs import load_config

from ..strategy_helpers import ONE_TINY_CLIENT

K = 2
CFG = [
    *ONE_TINY_CLIENT,
    "grpo.per_device_train_batch_size=4",
    "grpo.num_generations=4",  # one prompt a step: every step's batch is the same
    "grpo.learning_rate=0.05",
]


def length_reward(completions, **_) -> list[float]:
    """Varies across a random model's samples, so GRPO always has a non-zero advantage."""
    return [float(len(str(c))) for c in completions]


class SameDraws(TrainerCallback):
    """The premise "same seed and batches": generation draws the same random numbers at the same
    step of the client's training, whichever trainer takes that step."""

    def __init__(self, steps_before: int) -> None:
        self.steps_before = steps_before

    def on_step_begin(self, args, state, control, **kwargs):
        torch.manual_seed(1000 + self.steps_before + state.global_step)


def trained(rounds: list[int], keep: bool) -> dict[str, np.ndarray]:
    """The adapter after one trainer run per entry of ``rounds`` (its step count)."""
    cfg = load_config(None, CFG)
    model, tokenizer = fresh_adapter_model(cfg.model, seed=0)
    data = Dataset.from_list([client_partition(cfg, 0)[0]])
    state, done = RecordDict(), 0
    for steps in rounds:
        callbacks = [SameDraws(done)] + ([KeptOptimizer(state, model)] if keep else [])
        train_locally(model, tokenizer, data, [length_reward], cfg, 3, steps, callbacks=callbacks)
        done += steps
    return adapter_state(model)


def close(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return all(np.allclose(a[k], b[k], atol=1e-6, rtol=1e-5) for k in a)


def test_keep_gives_two_rounds_the_adapter_of_one_run_and_reset_does_not():
    one_run = trained([2 * K], keep=False)
    assert close(trained([K, K], keep=True), one_run)
    assert not close(trained([K, K], keep=False), one_run)


def test_the_kept_state_is_the_clients_own_and_survives_a_restart(tmp_path):
    cfg = load_config(None, CFG)
    model, tokenizer = fresh_adapter_model(cfg.model, seed=0)
    data = Dataset.from_list([client_partition(cfg, 0)[0]])
    state = RecordDict()
    train_locally(
        model, tokenizer, data, [length_reward], cfg, 3, K, callbacks=[KeptOptimizer(state, model)]
    )
    kept = state[STATE_KEY]
    steps = {k: float(a.numpy()) for k, a in kept.items() if k.endswith("/step")}
    assert steps and set(steps.values()) == {float(K)}  # AdamW's count: K steps taken
    assert any(k.endswith("/exp_avg_sq") for k in kept)
    store = StateStore(tmp_path, sessions=[])
    store.save(state, 1)
    restored = RecordDict()
    store.restore(restored, 2)
    assert all(np.array_equal(restored[STATE_KEY][k].numpy(), kept[k].numpy()) for k in kept)


def test_keep_is_refused_where_one_trainer_runs_all_steps():
    with pytest.raises(ConfigError, match="federation.optimizer_state"):
        load_config(None, ["strategy.name=centralized", "federation.optimizer_state=keep"])
