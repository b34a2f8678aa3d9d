"""FedAvg, FedProx (server and client side), FedAvgM, the FedOpt rules and the robust rules, checked
against numbers computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fgrpo.client.algorithms import proximal_term
from fgrpo.runtime.configs import load_config

from ..replies import reply
from ..strategy_helpers import (
    FEDAVG,
    ONE_TINY_CLIENT,
    OPT,
    adam_by_hand,
    aggregate,
    configure,
    make,
    two_replies,
    weights,
)

# --- FedAvg family ------------------------------------------------------------


def test_fedavg_is_the_num_examples_weighted_mean():
    s = make("fedavg")
    configure(s, [0.0, 0.0])
    np.testing.assert_allclose(aggregate(s, 1, two_replies()), FEDAVG, rtol=1e-6)
    assert weights(s) == pytest.approx([0.75, 0.25])
    assert [row["client-id"] for row in s.ledger] == ["a", "b"]


def test_fedprox_sends_mu_and_with_mu_zero_equals_fedavg():
    prox = make("fedprox", "strategy.proximal_mu=0.3")
    messages = configure(prox, [0.0, 0.0])
    assert messages and all(
        m.content["config"]["proximal-mu"] == pytest.approx(0.3) for m in messages
    )
    np.testing.assert_allclose(aggregate(prox, 1, two_replies()), FEDAVG, rtol=1e-6)

    prox0, avg = make("fedprox", "strategy.proximal_mu=0"), make("fedavg")
    configure(prox0, [0.0, 0.0])
    configure(avg, [0.0, 0.0])
    np.testing.assert_array_equal(
        aggregate(prox0, 1, two_replies()), aggregate(avg, 1, two_replies())
    )
    assert weights(prox0) == weights(avg)


def test_proximal_term_is_half_mu_times_squared_distance():
    params = {"a": torch.tensor([1.0, 2.0]), "b": torch.tensor([[3.0]])}
    anchor = {"a": torch.tensor([0.0, 1.0]), "b": torch.tensor([[1.0]])}
    # ||(1, 1)||^2 + ||2||^2 = 2 + 4 = 6
    assert proximal_term(params, anchor, 0.5).item() == pytest.approx(0.25 * 6)
    assert proximal_term(params, anchor, 0.0).item() == 0.0


def test_fedavgm_momentum_by_hand():
    s = make("fedavgm", "strategy.server_momentum=0.9", "strategy.server_lr=1.0")
    configure(s, [1.0, 1.0])
    x1 = aggregate(
        s, 1, two_replies()
    )  # pseudo-gradient (1,1) - (2.5,2) = (-1.5,-1); first momentum = it
    np.testing.assert_allclose(x1, [2.5, 2.0], rtol=1e-6)
    configure(s, x1.tolist())
    x2 = aggregate(
        s, 2, [reply("a", {"w": [3.0, 3.0]}, 30, 0.1), reply("b", {"w": [3.0, 3.0]}, 10, 0.1)]
    )
    # pg = (2.5,2) - (3,3) = (-0.5,-1); m = 0.9*(-1.5,-1) + pg = (-1.85,-1.9); x = x1 - m
    np.testing.assert_allclose(x2, [2.5 + 1.85, 2.0 + 1.9], rtol=1e-6)


def test_fedadam_by_hand():
    s = make("fedadam", *OPT)
    configure(s, [1.0, 1.0])
    got = aggregate(s, 1, two_replies())
    expected = [adam_by_hand(1.0, d, 0.1, 0.9, 0.99, 0.001, 1) for d in (1.5, 1.0)]
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    assert weights(s) == pytest.approx([0.75, 0.25])  # the average Adam steps on


def test_fedyogi_by_hand():
    s = make("fedyogi", *OPT)
    configure(s, [1.0, 1.0])
    got = aggregate(s, 1, two_replies())
    # v0 = 0: v = 0 - 0.01 d^2 sign(0 - d^2) = 0.01 d^2; m = 0.1 d; x = x0 + eta m / (sqrt(v) + tau)
    expected = [1.0 + 0.1 * (0.1 * d) / (math.sqrt(0.01 * d * d) + 0.001) for d in (1.5, 1.0)]
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_fedadagrad_by_hand():
    s = make("fedadagrad", *OPT)
    configure(s, [1.0, 1.0])
    got = aggregate(s, 1, two_replies())
    expected = [1.0 + 0.1 * d / (abs(d) + 0.001) for d in (1.5, 1.0)]  # m = d, v = d^2
    np.testing.assert_allclose(got, expected, rtol=1e-5)


# --- robust rules ---------------------------------------------------------------


def test_fedmedian_odd_and_even_with_honest_weights():
    s = make("fedmedian")
    configure(s, [0.0, 0.0])
    replies = [
        reply("a", {"w": [1.0, 10.0]}, 5, 0.1),
        reply("b", {"w": [2.0, 20.0]}, 50, 0.1),
        reply("c", {"w": [9.0, 0.0]}, 5, 0.1),
    ]
    np.testing.assert_allclose(aggregate(s, 1, replies), [2.0, 10.0])
    # coordinate 0 is b's value, coordinate 1 is a's: each counts for half of the coordinates
    assert weights(s) == pytest.approx([0.5, 0.5, 0.0])

    replies = [
        reply(c, {"w": [v, 0.0]}, 5, 0.1)
        for c, v in zip("abcd", [4.0, 1.0, 3.0, 2.0], strict=False)
    ]
    np.testing.assert_allclose(aggregate(s, 2, replies), [2.5, 0.0])
    # coord 0: ranks 1,2 are d (2) and c (3), 1/2 each; coord 1 (all equal, ties by order): b and c
    assert weights(s) == pytest.approx([0.0, 0.25, 0.5, 0.25])


def test_fedtrimmedavg_by_hand():
    s = make("fedtrimmedavg", "strategy.trim_beta=0.2")  # 5 clients: int(0.2 * 5) = 1 cut per tail
    configure(s, [0.0])
    values = {"a": 100.0, "b": 2.0, "c": 3.0, "d": -50.0, "e": 4.0}
    replies = [reply(c, {"w": [v]}, 5, 0.1) for c, v in values.items()]
    np.testing.assert_allclose(aggregate(s, 1, replies), [(2.0 + 3.0 + 4.0) / 3])
    assert weights(s) == pytest.approx([0.0, 1 / 3, 1 / 3, 0.0, 1 / 3])


def test_krum_keeps_the_most_central_update():
    s = make("krum", "strategy.krum_num_malicious=0")
    configure(s, [0.0])
    # n - f - 2 = 2 nearest: scores 0->1+4, 1->1+1, 2->1+4, 10->64+81: client "one" wins
    replies = [
        reply(c, {"w": [v]}, 5, 0.1)
        for c, v in {"zero": 0.0, "one": 1.0, "two": 2.0, "ten": 10.0}.items()
    ]
    np.testing.assert_allclose(aggregate(s, 1, replies), [1.0])
    assert weights(s) == [0.0, 1.0, 0.0, 0.0]


# --- the client side on a real (tiny) model ------------------------------------------

TINY = [
    *ONE_TINY_CLIENT,
    "federation.local_steps=2",
]


def local_training(trainer_cls, **kwargs) -> dict[str, np.ndarray]:
    from fgrpo.client.grpo import train_locally
    from fgrpo.data.partitions import client_partition
    from fgrpo.models.lora import fresh_adapter_model
    from fgrpo.models.transport import adapter_state

    cfg = load_config(None, TINY + ["grpo.learning_rate=0.05"])
    model, tokenizer = fresh_adapter_model(cfg.model, seed=0)
    extra = kwargs.pop("make_kwargs", lambda m: {})(model)
    train_locally(
        model,
        tokenizer,
        client_partition(cfg, 0),
        [completion_length_reward],
        cfg,
        seed=7,
        steps=cfg.federation.local_steps,
        trainer_cls=trainer_cls,
        **extra,
        **kwargs,
    )
    return adapter_state(model)


def completion_length_reward(completions, **kwargs) -> list[float]:
    """Varies across a random model's samples, so GRPO always has a non-zero advantage."""
    return [float(len(str(c))) for c in completions]


def prox_kwargs(mu: float):
    from fgrpo.client.algorithms import ProximalTerm, adapter_parameters

    return lambda model: {"proximal": ProximalTerm(adapter_parameters(model), mu)}


def test_fedprox_client_with_mu_zero_trains_exactly_like_grpo_and_mu_pulls_towards_the_global():
    from trl import GRPOTrainer

    from fgrpo.client.algorithms import FedProxGRPOTrainer
    from fgrpo.core.config import ModelConfig
    from fgrpo.models.lora import fresh_adapter_model
    from fgrpo.models.transport import adapter_state

    start = adapter_state(fresh_adapter_model(ModelConfig(name="tiny-random"), seed=0)[0])
    plain = local_training(GRPOTrainer)
    prox0 = local_training(FedProxGRPOTrainer, make_kwargs=prox_kwargs(0.0))
    for k in plain:
        np.testing.assert_array_equal(prox0[k], plain[k])
    moved = sum(float(((plain[k] - start[k]) ** 2).sum()) for k in start)
    assert moved > 0, "training must move the adapter for the comparison to mean anything"
    strong = local_training(FedProxGRPOTrainer, make_kwargs=prox_kwargs(1e4))
    assert sum(float(((strong[k] - start[k]) ** 2).sum()) for k in start) < moved
