"""model.lora_aggregation: exact folds what averaging the factors misses into the base weights; ffa
never changes A; rolora trains one factor a round. Checked on a real PEFT model of the tiny
architecture, the registry's strategies and TRL's trainer."""

import numpy as np
import pytest
import torch
from datasets import Dataset
from flwr.app import ConfigRecord
from peft import get_peft_model_state_dict

from fgrpo.client.algorithms import adapter_parameters
from fgrpo.client.grpo import train_locally
from fgrpo.core.errors import ConfigError
from fgrpo.data.partitions import client_partition
from fgrpo.models.lora import fresh_adapter_model
from fgrpo.models.lora_modes import (
    A_SUFFIX,
    B_SUFFIX,
    adapted_layers,
    residual_step,
    set_base_residual,
    set_trained_factors,
    trained_factors,
)
from fgrpo.models.transport import (
    adapter_state,
    from_arrayrecord,
    load_adapter_state,
    to_arrayrecord,
)
from fgrpo.runtime.configs import load_config
from fgrpo.server.lora_aggregation import STATE_KEY, BaseResidual
from fgrpo.server.strategies import build_strategy

from ..replies import reply
from ..strategy_helpers import FakeGrid

TINY = ["model.name=tiny-random", "model.lora_r=4", "model.lora_alpha=8"]


def client_adapters(start: dict[str, np.ndarray], seed: int) -> dict[str, np.ndarray]:
    """A client's trained adapter: both factors moved, differently per client."""
    rng = np.random.default_rng(seed)
    return {k: v + rng.normal(0, 0.05, v.shape).astype(np.float32) for k, v in start.items()}


def effective_weights(model) -> dict[str, torch.Tensor]:
    """W of every adapted layer as the model computes with it: base + (alpha / r) B A."""
    out = {}
    for name, module in model.named_modules():
        if hasattr(module, "lora_A") and hasattr(module, "base_layer"):
            b, a = module.lora_B["default"].weight, module.lora_A["default"].weight
            out[name] = (module.base_layer.weight + module.scaling["default"] * (b @ a)).detach()
    return out


def one_round(mode: str, strategy_name: str = "fedavg", *extra: str):
    """A real strategy aggregates two clients' adapters; returns the model after the round and
    what W0 + s Σ w_k B_k A_k is for every adapted layer."""
    cfg = load_config(
        None,
        [
            *TINY,
            f"strategy.name={strategy_name}",
            "federation.num_clients=2",
            f"model.lora_aggregation={mode}",
            *extra,
        ],
    )
    model, _ = fresh_adapter_model(cfg.model, seed=0)
    start = adapter_state(model)
    start = {k: v + (0.1 if k.endswith(B_SUFFIX) else 0.0) for k, v in start.items()}  # B ≠ 0
    w0 = {
        name: module.base_layer.weight.detach().clone()
        for name, module in model.named_modules()
        if hasattr(module, "lora_A") and hasattr(module, "base_layer")
    }
    clients = [client_adapters(start, 1), client_adapters(start, 2)]
    strategy = build_strategy(cfg)
    reply("warm-up", {"w": [0.0]}, 1, 0.0)  # gives the test process a Flower task identity
    list(strategy.configure_train(1, to_arrayrecord(start), ConfigRecord({}), FakeGrid(2)))
    replies = [reply("a", clients[0], 30, 0.5), reply("b", clients[1], 10, 0.3)]
    arrays, _ = strategy.aggregate_train(1, replies)
    new = from_arrayrecord(arrays)
    weights = [row["weight"] for row in strategy.ledger]
    residual = BaseResidual(cfg, model)
    residual.after_round(start, new, replies, strategy.ledger)
    load_adapter_state(model, new)
    scale = cfg.model.lora_alpha / cfg.model.lora_r
    expected = {}
    for layer in adapted_layers(start):
        mean = sum(
            w * (torch.from_numpy(c[layer + B_SUFFIX]) @ torch.from_numpy(c[layer + A_SUFFIX]))
            for w, c in zip(weights, clients, strict=True)
        )
        expected[layer] = w0[layer] + scale * mean
    return model, expected, residual, weights


def test_exact_makes_the_global_model_the_weighted_mean_of_the_clients_products():
    model, expected, residual, weights = one_round("exact")
    assert weights == pytest.approx([0.75, 0.25])
    got = effective_weights(model)
    assert set(got) == set(expected) and len(got) >= 8
    for layer in expected:
        torch.testing.assert_close(got[layer], expected[layer], atol=2e-6, rtol=1e-5)
    assert residual.checkpointed({"x": 1})[STATE_KEY].keys() == expected.keys()


def test_average_differs_from_the_mean_of_products_on_different_replies():
    model, expected, residual, _ = one_round("average")
    assert residual.total == {}  # average keeps the base weights as loaded
    got = effective_weights(model)
    gap = max(float((got[k] - expected[k]).abs().max()) for k in expected)
    assert gap > 1e-4


def test_exact_with_a_server_learning_rate_and_fgrpo():
    model, expected_full, _, weights = one_round("exact", "fgrpo", "strategy.server_lr=1.0")
    got = effective_weights(model)
    for layer in expected_full:
        torch.testing.assert_close(got[layer], expected_full[layer], atol=2e-6, rtol=1e-5)
    assert sum(weights) == pytest.approx(1.0)


def test_residual_step_by_hand_on_one_layer():
    """Two clients, rank 1, a 2x2 layer: R = s (Σ w_k B_k A_k − B̄ Ā)."""
    a1, b1 = np.array([[1.0, 0.0]]), np.array([[1.0], [0.0]])
    a2, b2 = np.array([[0.0, 1.0]]), np.array([[0.0], [1.0]])
    key = "layer"
    clients = [{key + A_SUFFIX: a1, key + B_SUFFIX: b1}, {key + A_SUFFIX: a2, key + B_SUFFIX: b2}]
    mean = {key + A_SUFFIX: (a1 + a2) / 2, key + B_SUFFIX: (b1 + b2) / 2}
    step = residual_step(mean, mean, clients, [0.5, 0.5], server_lr=1.0, scale=2.0)
    # Σ w B A = diag(0.5, 0.5); B̄ Ā = 0.25 * ones; R = 2 * (diag(.5,.5) - .25) = [[.5,-.5],[-.5,.5]]
    np.testing.assert_allclose(step[key], [[0.5, -0.5], [-0.5, 0.5]])


def test_the_base_residual_returns_to_w0_when_a_later_round_sends_none():
    cfg = load_config(None, TINY)
    model, _ = fresh_adapter_model(cfg.model, seed=0)
    layer = adapted_layers(adapter_state(model))[0]
    module = dict(model.named_modules())[layer]
    w0 = module.base_layer.weight.detach().clone()
    offset = np.full(tuple(w0.shape), 0.25, dtype=np.float32)
    set_base_residual(model, {layer: offset})
    torch.testing.assert_close(module.base_layer.weight, w0 + 0.25)
    set_base_residual(model, {})
    torch.testing.assert_close(module.base_layer.weight, w0)


@pytest.mark.parametrize(
    "mode, rnd, a, b",
    [("average", 1, True, True), ("ffa", 1, False, True), ("ffa", 2, False, True)]
    + [("rolora", 1, False, True), ("rolora", 2, True, False), ("exact", 3, True, True)],
)
def test_which_factors_a_round_trains(mode, rnd, a, b):
    assert trained_factors(mode, rnd) == (a, b)


def length_reward(completions, **_) -> list[float]:
    """Varies across a random model's samples, so GRPO always has a non-zero advantage."""
    return [float(len(str(c))) for c in completions]


def test_ffa_never_changes_a_under_trls_trainer():
    """A real GRPO round on the tiny model with A frozen: every lora_A tensor is as sent, and B
    moved."""
    cfg = load_config(
        None,
        [
            *TINY,
            'data.tasks=["sorting"]',
            "model.lora_aggregation=ffa",
            "grpo.per_device_train_batch_size=4",
            "grpo.max_completion_length=8",
            "grpo.learning_rate=0.05",
        ],
    )
    model, tokenizer = fresh_adapter_model(cfg.model, seed=0)
    state = adapter_state(model)
    state = {k: v + (0.1 if k.endswith(B_SUFFIX) else 0.0) for k, v in state.items()}
    load_adapter_state(model, state)
    set_trained_factors(model, cfg.model.lora_aggregation, 1)
    assert set(adapter_parameters(model)) == set(state)  # FedProx and SCAFFOLD still see A
    rows = client_partition(cfg, 0).select(range(8))
    train_locally(model, tokenizer, Dataset.from_list(list(rows)), [length_reward], cfg, 0, 2)
    after = {k: v.detach().numpy() for k, v in get_peft_model_state_dict(model).items()}
    for k in state:
        if k.endswith(A_SUFFIX):
            np.testing.assert_array_equal(after[k], state[k])
    assert any(not np.array_equal(after[k], state[k]) for k in state if k.endswith(B_SUFFIX))


@pytest.mark.parametrize(
    "overrides, culprit",
    [
        (["strategy.name=fedadam", "model.lora_aggregation=exact"], "exact needs a weighted mean"),
        (["strategy.name=krum", "model.lora_aggregation=exact"], "exact needs a weighted mean"),
        (["strategy.name=centralized", "model.lora_aggregation=ffa"], "aggregates no adapters"),
        (["strategy.name=local-only", "model.lora_aggregation=rolora"], "aggregates no adapters"),
        (["privacy.dp=server-fixed", "model.lora_aggregation=exact"], "around privacy.dp's noise"),
        (["strategy.name=scaffold", "model.lora_aggregation=fedsa"], "control variates"),
        (["privacy.dp=client-fixed", "model.lora_aggregation=fedsa"], "not calibrated"),
    ],
)
def test_modes_a_strategy_cannot_take_are_refused_naming_the_key(overrides, culprit):
    with pytest.raises(ConfigError, match=f"model.lora_aggregation.*{culprit}"):
        load_config(None, [*TINY, *overrides])
