"""The FGRPO properties DESIGN.md requires, on the pure rule and on the Flower strategy."""

import numpy as np
import pytest
from flwr.app import ArrayRecord

from fgrpo.server.strategies.fgrpo import Fgrpo
from fgrpo.server.strategies.fgrpo_rule import (
    ClientHistory,
    FgrpoParams,
    fgrpo_weights,
    relative_gain,
    update_history,
)

from .replies import reply

GAIN_MODES = ["ratio", "zscore"]


def strategy(**params) -> Fgrpo:
    return Fgrpo(params=FgrpoParams(**params), min_available_nodes=1, min_train_nodes=1)


def run_rounds(fgrpo: Fgrpo, rewards_by_round: list[dict[str, float]], sizes: dict[str, int]) -> list[list[dict]]:
    """Feed per-round client rewards through the strategy; return each round's ledger."""
    ledgers = []
    for rnd, rewards in enumerate(rewards_by_round, start=1):
        fgrpo.global_arrays = {"w": np.zeros(2, dtype=np.float32)}
        replies = [reply(cid, {"w": np.ones(2) * i}, sizes[cid], r) for i, (cid, r) in enumerate(rewards.items())]
        fgrpo.aggregate_train(rnd, replies)
        ledgers.append(fgrpo.ledger)
    return ledgers


REWARDS = [
    {"a": 0.20, "b": 3.0, "c": -0.5},
    {"a": 0.35, "b": 2.5, "c": -0.2},
    {"a": 0.30, "b": 4.0, "c": 0.1},
    {"a": 0.60, "b": 3.9, "c": 0.4},
]
SIZES = {"a": 40, "b": 100, "c": 7}


@pytest.mark.parametrize("seed", range(20))
def test_weights_are_finite_nonnegative_and_sum_to_one(seed):
    rng = np.random.default_rng(seed)
    k = int(rng.integers(1, 9))
    params = FgrpoParams(tau=float(rng.uniform(0.05, 3)), gamma=float(rng.uniform(0, 2)), floor=float(rng.uniform(0, 0.5)))
    n = rng.integers(1, 10_000, size=k).astype(float)
    gains = rng.uniform(-params.g_max, params.g_max, size=k)
    w = fgrpo_weights(list(n), list(gains), params)
    assert np.all(np.isfinite(w)) and np.all(w >= 0)
    assert w.sum() == pytest.approx(1.0, abs=1e-12)


def test_extreme_gains_and_sizes_stay_finite():
    w = fgrpo_weights([1, 1e9], [-5.0, 5.0], FgrpoParams(tau=1e-3))
    assert np.all(np.isfinite(w)) and w.sum() == pytest.approx(1.0)


@pytest.mark.parametrize("gain", [0.0, 0.7, -3.0])
def test_equal_gains_give_exactly_fedavg_weights(gain):
    n = [40, 100, 7, 13]
    w = fgrpo_weights(n, [gain] * 4, FgrpoParams())
    np.testing.assert_allclose(w, np.array(n) / sum(n), rtol=1e-13, atol=0)


def test_first_report_has_gain_zero_and_baseline_equal_to_signal():
    for mode in ("ratio", "zscore", "difference"):
        gain, baseline = relative_gain(0.37, None, FgrpoParams(gain_mode=mode))
        assert gain == 0.0 and baseline == 0.37
    first = update_history(None, 0.37, FgrpoParams())
    assert first.baseline == 0.37 and first.reports == 1


def test_first_round_through_the_strategy_is_fedavg():
    ledger = run_rounds(strategy(), REWARDS[:1], SIZES)[0]
    total = sum(SIZES.values())
    for row in ledger:
        assert row["gain"] == 0.0
        assert row["baseline"] == row["reward"]
        assert row["weight"] == pytest.approx(SIZES[row["client-id"]] / total, rel=1e-12)


@pytest.mark.parametrize("mode", GAIN_MODES)
@pytest.mark.parametrize("scale", [1e-3, 1e3])
def test_scaling_one_clients_rewards_leaves_every_weight_unchanged(mode, scale):
    plain = run_rounds(strategy(gain_mode=mode), REWARDS, SIZES)
    scaled_rewards = [{**r, "b": r["b"] * scale} for r in REWARDS]
    scaled = run_rounds(strategy(gain_mode=mode), scaled_rewards, SIZES)
    for before, after in zip(plain, scaled):
        np.testing.assert_allclose([r["weight"] for r in before], [r["weight"] for r in after], rtol=1e-6)
        np.testing.assert_allclose([r["gain"] for r in before], [r["gain"] for r in after], rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("mode", GAIN_MODES + ["difference"])
def test_falling_client_gets_less_weight_than_rising_one(mode):
    rounds = [{"up": 0.5, "down": 0.5}, {"up": 0.8, "down": 0.2}]
    ledger = run_rounds(strategy(gain_mode=mode), rounds, {"up": 50, "down": 50})[-1]
    by_id = {r["client-id"]: r for r in ledger}
    assert by_id["up"]["gain"] > 0 > by_id["down"]["gain"]
    assert by_id["up"]["weight"] > by_id["down"]["weight"]


def test_difference_mode_is_scale_sensitive():
    """The reference variant: the absolute change is not invariant, unlike ratio/zscore."""
    rounds = [{"a": 0.5, "b": 0.5}, {"a": 0.6, "b": 0.6}]
    scaled = [{"a": r["a"], "b": r["b"] * 100} for r in rounds]
    w_plain = run_rounds(strategy(gain_mode="difference"), rounds, {"a": 1, "b": 1})[-1]
    w_scaled = run_rounds(strategy(gain_mode="difference"), scaled, {"a": 1, "b": 1})[-1]
    assert w_plain[0]["weight"] == pytest.approx(0.5)
    assert w_scaled[1]["weight"] > 0.9


def test_gain_is_clipped_and_ratio_uses_eps_for_zero_baseline():
    params = FgrpoParams(g_max=2.0, eps=1e-6)
    gain, _ = relative_gain(1.0, ClientHistory(baseline=0.0), params)
    assert gain == 2.0
    gain, _ = relative_gain(-1.0, ClientHistory(baseline=0.0), params)
    assert gain == -2.0


def test_baseline_is_an_ema_updated_after_aggregation():
    fgrpo = strategy(beta=0.75)
    run_rounds(fgrpo, [{"a": 1.0}, {"a": 2.0}], {"a": 10})
    assert fgrpo.history["a"].baseline == pytest.approx(0.75 * 1.0 + 0.25 * 2.0)
    assert fgrpo.history["a"].reports == 2


def test_temperature_and_floor():
    n, gains = [10, 10], [1.0, -1.0]
    sharp = fgrpo_weights(n, gains, FgrpoParams(tau=0.1))
    soft = fgrpo_weights(n, gains, FgrpoParams(tau=10.0))
    assert sharp[1] < soft[1] < 0.5
    # floor w_min/|S| = 0.25 lifts the losing client, then weights are renormalised
    floored = fgrpo_weights(n, gains, FgrpoParams(tau=0.01, floor=0.5))
    np.testing.assert_allclose(floored, [1 / 1.25, 0.25 / 1.25])


def test_gamma_zero_drops_the_data_size_prior():
    w = fgrpo_weights([1, 1000], [0.0, 0.0], FgrpoParams(gamma=0.0))
    np.testing.assert_allclose(w, [0.5, 0.5])


def test_aggregate_is_the_weighted_average_with_server_learning_rate():
    fgrpo = Fgrpo(params=FgrpoParams(), server_lr=0.5, min_available_nodes=1, min_train_nodes=1)
    fgrpo.global_arrays = {"w": np.array([1.0, 1.0], dtype=np.float32)}
    replies = [reply("a", {"w": [3.0, 1.0]}, 30, 0.1), reply("b", {"w": [1.0, 5.0]}, 10, 0.9)]
    arrays, metrics = fgrpo.aggregate_train(1, replies)
    assert isinstance(arrays, ArrayRecord)
    average = 0.75 * np.array([3.0, 1.0]) + 0.25 * np.array([1.0, 5.0])
    expected = 1.0 + 0.5 * (average - 1.0)
    np.testing.assert_allclose(arrays["w"].numpy(), expected, rtol=1e-6)
    assert metrics["reward"] == pytest.approx(0.75 * 0.1 + 0.25 * 0.9)


def test_probe_signal_reads_the_probe_metric():
    fgrpo = Fgrpo(params=FgrpoParams(), signal="probe", min_available_nodes=1, min_train_nodes=1)
    fgrpo.global_arrays = {"w": np.zeros(1, dtype=np.float32)}
    fgrpo.aggregate_train(1, [reply("a", {"w": [1.0]}, 5, 9.0, **{"probe-reward": 0.25})])
    assert fgrpo.ledger[0]["signal"] == 0.25 and fgrpo.history["a"].baseline == 0.25


def test_strategy_state_round_trips():
    fgrpo = strategy()
    run_rounds(fgrpo, REWARDS[:2], SIZES)
    restored = strategy()
    restored.load_state_dict(fgrpo.state_dict())
    assert restored.history == fgrpo.history
