"""Reward-weighted, FGRPO and FGRPO-Adam weights, and local-only's per-client models, checked
against numbers computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from flwr.app import ConfigRecord, Message

from fgrpo.core.protocol import KEEP_LOCAL_KEY, TASK_MIX_KEY
from fgrpo.runtime.configs import load_config
from fgrpo.server.strategies.baselines import reward_floor, reward_weights

from ..replies import reply
from ..strategy_helpers import (
    BY_HAND,
    OPT,
    adam_by_hand,
    aggregate,
    configure,
    make,
    two_replies,
    weights,
)

# --- reward-weighted and FGRPO ---------------------------------------------------


def test_reward_weights_by_hand_including_negative_rewards():
    # w_k ∝ n_k (r_k − r_min) with the run's declared floor, not the sampled minimum
    np.testing.assert_allclose(reward_weights([0.5, 0.3], [10, 10], 0.0), [0.625, 0.375])
    np.testing.assert_allclose(
        reward_weights([0.5, 0.3], [30, 10], 0.0), [15 / 18, 3 / 18]
    )  # n_k kept
    # countdown's floor −1: raw n(r + 1) = 10·0.2, 10·2, 20·1 -> the worst client still counts
    np.testing.assert_allclose(
        reward_weights([-0.8, 1.0, 0.0], [10, 10, 20], -1.0), [2 / 42, 20 / 42, 20 / 42]
    )
    np.testing.assert_allclose(
        reward_weights([-1.0, -1.0], [10, 30], -1.0), [0.25, 0.75]
    )  # all at the floor: FedAvg
    np.testing.assert_allclose(
        reward_weights([-3.0, 1.0], [10, 10], -1.0), [0.0, 1.0]
    )  # below the declared floor
    with pytest.raises(ValueError):
        reward_weights([float("nan"), 1.0], [1, 1], 0.0)


def test_reward_floor_is_the_lowest_declared_reward_of_the_runs_tasks():
    floor = lambda *o: reward_floor(load_config(None, list(o)))  # noqa: E731
    assert floor('data.tasks=["addition", "sorting"]') == 0.0
    assert floor('data.tasks=["addition", "countdown"]') == -1.0
    assert (
        floor('data.tasks=["addition", "countdown"]', "data.reward_scale={countdown = 3.0}") == -3.0
    )
    assert make("reward-weighted").reward_min == -1.0  # the default task list includes countdown


def test_reward_weighted_aggregate():
    s = make("reward-weighted")  # r_min = −1: raw weights 30·1.5 = 45 and 10·1.3 = 13
    configure(s, [0.0, 0.0])
    got = aggregate(s, 1, two_replies(0.5, 0.3))
    wa, wb = 45 / 58, 13 / 58
    np.testing.assert_allclose(got, [wa * 3 + wb * 1, wa * 1 + wb * 5], rtol=1e-6)
    assert weights(s) == pytest.approx([wa, wb])


def run_two_rounds(name: str, scale_b: float) -> list[list[float]]:
    s = make(name, *BY_HAND, "strategy.gain=ratio")  # worked by hand below
    out = []
    for rnd, (ra, rb) in enumerate([(0.2, 4.0), (0.3, 2.0)], start=1):
        configure(s, [0.0, 0.0])
        aggregate(
            s,
            rnd,
            [
                reply("a", {"w": [1.0, 0.0]}, 10, ra),
                reply("b", {"w": [0.0, 1.0]}, 10, rb * scale_b),
            ],
        )
        out.append(weights(s))
    return out


def test_scaling_one_clients_rewards_changes_reward_weighted_but_not_fgrpo():
    plain, scaled = run_two_rounds("reward-weighted", 1.0), run_two_rounds("reward-weighted", 1e3)
    assert plain[0] == pytest.approx([1.2 / 6.2, 5.0 / 6.2])  # r − r_min with r_min = −1
    assert scaled[0] == pytest.approx([1.2 / 4002.2, 4001.0 / 4002.2])
    assert not np.allclose(plain, scaled)
    plain, scaled = run_two_rounds("fgrpo", 1.0), run_two_rounds("fgrpo", 1e3)
    np.testing.assert_allclose(plain, scaled, rtol=1e-9)
    # round 2 by hand: gains +0.5 (0.2 -> 0.3) and -0.5 (4 -> 2), tau = 1, equal sizes
    e = math.exp(1.0)
    assert plain[1] == pytest.approx([e / (e + 1), 1 / (e + 1)])


def test_fgrpo_adam_is_fgrpo_weights_then_fedadam_step():
    s = make("fgrpo-adam", *OPT, *BY_HAND, "strategy.gain=ratio")
    assert next(c for c in type(s).__mro__ if "aggregate_train" in vars(c)).__name__ == "FedAdam"
    configure(s, [0.0, 0.0])
    x1 = aggregate(
        s, 1, [reply("a", {"w": [1.0, 0.0]}, 10, 0.2), reply("b", {"w": [0.0, 1.0]}, 10, 4.0)]
    )
    # round 1: gains 0, weights 1/2: d = (0.5, 0.5)
    np.testing.assert_allclose(
        x1, [adam_by_hand(0.0, 0.5, 0.1, 0.9, 0.99, 0.001, 1)] * 2, rtol=1e-5
    )
    configure(s, x1.tolist())
    x2 = aggregate(
        s, 2, [reply("a", {"w": [1.0, 0.0]}, 10, 0.3), reply("b", {"w": [0.0, 1.0]}, 10, 2.0)]
    )
    e = math.exp(1.0)
    wa, wb = e / (e + 1), 1 / (e + 1)
    assert weights(s) == pytest.approx([wa, wb])
    expected = []
    for k, w_a in enumerate([wa, wb]):  # FGRPO average minus x1, then Adam with carried moments
        d1, d2 = 0.5, (w_a - x1[k])
        m = 0.9 * (0.1 * d1) + 0.1 * d2
        v = 0.99 * (0.01 * d1 * d1) + 0.01 * d2 * d2
        eta_norm = 0.1 * math.sqrt(1 - 0.99**3) / (1 - 0.9**3)
        expected.append(x1[k] + eta_norm * m / (math.sqrt(v) + 0.001))
    np.testing.assert_allclose(x2, expected, rtol=1e-5)


# --- local-only ---------------------------------------------------------------------


def local_reply(cid: str, w: list[float], mix: dict[str, int]) -> Message:
    message = reply(cid, {"w": w}, sum(mix.values()), 0.1)
    message.content[TASK_MIX_KEY] = ConfigRecord(mix)
    return message


def by_hand_accuracy(state: dict[str, np.ndarray]) -> dict[str, float]:
    """Stands in for greedy evaluation: accuracy read off the adapter, so the means are
    checkable."""
    addition, sorting = (float(v) / 10 for v in state["w"])
    return {
        "eval": {"addition": addition, "sorting": sorting, "macro": (addition + sorting) / 2},
        "eval_se": {"addition": 0.1, "sorting": 0.2, "macro": 0.15},
    }


def test_local_only_keeps_the_global_adapter_and_evaluates_each_clients_own_model():
    s = make("local-only")
    messages = configure(s, [0.0, 0.0])
    assert messages[0].content["config"][KEEP_LOCAL_KEY] is True
    arrays, _ = s.aggregate_train(
        1,
        [
            local_reply("a", [3.0, 1.0], {"addition": 30, "sorting": 10}),
            local_reply("b", [1.0, 5.0], {"sorting": 10}),
        ],
    )
    assert arrays is None  # nothing learnt by one client is ever sent to another
    assert weights(s) == [0.5, 0.5]
    got = s.evaluate_clients(by_hand_accuracy)
    a, b = got["clients"]["a"], got["clients"]["b"]
    assert a["global"] == pytest.approx({"addition": 0.3, "sorting": 0.1, "macro": 0.2})
    assert a["own-mix"] == pytest.approx((30 * 0.3 + 10 * 0.1) / 40)  # 0.25
    assert b["own-mix"] == pytest.approx(0.5)  # sorting only
    assert got["mean"]["global"] == pytest.approx({"addition": 0.2, "sorting": 0.3, "macro": 0.25})
    assert got["mean"]["own-mix"] == pytest.approx(0.375)
    assert got["mean"]["global_se"] == pytest.approx(
        {"addition": 0.1, "sorting": 0.2, "macro": 0.15}
    )
    s.aggregate_train(
        2, [local_reply("a", [5.0, 5.0], {"addition": 30, "sorting": 10})]
    )  # b sits out
    got = s.evaluate_clients(by_hand_accuracy)
    assert got["clients"]["a"]["own-mix"] == pytest.approx(0.5) and got["clients"]["b"][
        "own-mix"
    ] == pytest.approx(0.5)
    assert got["mean"]["global"]["macro"] == pytest.approx((0.5 + 0.3) / 2)
    assert weights(s) == [0.5]
