"""The FGRPO properties DESIGN.md requires, on the pure rule and on the Flower strategy."""

import math

import numpy as np
import pytest
from flwr.app import ArrayRecord

from fgrpo.core.fgrpo_rule import (
    FgrpoParams,
    TaskHistory,
    TaskSignal,
    client_gain,
    fgrpo_weights,
    task_gain,
    update_history,
)
from fgrpo.server.strategies.fgrpo import Fgrpo, FgrpoSetup
from fgrpo.server.strategies.weighted import read_report

from ..replies import reply

INVARIANT_MODES = ["range", "ratio", "zscore"]
# Each client's tasks; "tb" is client b's own task, so scaling it touches b alone.
RANGES = {"ta": (0.0, 1.0), "tb": (0.0, 10.0), "tc": (-1.0, 1.0), "shared": (0.0, 5.0)}


def strategy(**params) -> Fgrpo:
    params.setdefault(
        "warmup_reports", 1
    )  # let zscore count from the second report in short histories
    params.setdefault(
        "tau", 1.0
    )  # hand-sized gains below; at small temperatures most weights saturate
    return Fgrpo(
        setup=FgrpoSetup(FgrpoParams(**params), task_ranges=RANGES),
        min_available_nodes=1,
        min_train_nodes=1,
    )


def run_rounds(
    fgrpo: Fgrpo, rounds: list[dict[str, dict[str, tuple[float, int]]]], sizes: dict[str, int]
) -> list[list[dict]]:
    """Feed per-round, per-client, per-task (signal, rollouts) through the strategy; return the
    ledgers."""
    ledgers = []
    for rnd, clients in enumerate(rounds, start=1):
        fgrpo.global_arrays = {"w": np.zeros(2, dtype=np.float32)}
        replies = [
            reply(cid, {"w": np.ones(2) * i}, sizes[cid], 0.0, tasks)
            for i, (cid, tasks) in enumerate(clients.items())
        ]
        fgrpo.aggregate_train(rnd, replies)
        ledgers.append(fgrpo.ledger)
    return ledgers


def weights_of(ledgers: list[list[dict]]) -> np.ndarray:
    return np.array([[row["weight"] for row in ledger] for ledger in ledgers])


ROUNDS = [
    {
        "a": {"ta": (0.20, 8), "shared": (1.0, 4)},
        "b": {"tb": (3.0, 12)},
        "c": {"tc": (-0.5, 6), "shared": (2.0, 2)},
    },
    {
        "a": {"ta": (0.35, 4), "shared": (1.5, 8)},
        "b": {"tb": (2.5, 12)},
        "c": {"tc": (-0.2, 4), "shared": (2.5, 4)},
    },
    {"a": {"ta": (0.30, 6), "shared": (1.2, 6)}, "b": {"tb": (4.0, 12)}, "c": {"tc": (0.1, 8)}},
    {
        "a": {"ta": (0.60, 8), "shared": (2.0, 4)},
        "b": {"tb": (3.9, 12)},
        "c": {"tc": (0.4, 2), "shared": (3.0, 6)},
    },
]
SIZES = {"a": 40, "b": 100, "c": 7}


def transform_b(rounds, f):
    return [{**r, "b": {t: (f(p), n) for t, (p, n) in r["b"].items()}} for r in rounds]


# --- weights --------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(20))
def test_weights_are_finite_nonnegative_and_sum_to_one(seed):
    rng = np.random.default_rng(seed)
    k = int(rng.integers(1, 9))
    params = FgrpoParams(
        tau=float(rng.uniform(0.05, 3)),
        gamma=float(rng.uniform(0, 2)),
        floor=float(rng.uniform(0, 0.5)),
    )
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


def test_equal_per_task_gains_give_fedavg_weights_whatever_the_task_mix():
    """Every task of every client improves by 10% of its range: all g_k are 0.1, so FedAvg."""
    improved = {
        cid: {t: (p + 0.1 * (RANGES[t][1] - RANGES[t][0]), n) for t, (p, n) in tasks.items()}
        for cid, tasks in ROUNDS[0].items()
    }
    ledger = run_rounds(strategy(gain_mode="range"), [ROUNDS[0], improved], SIZES)[-1]
    total = sum(SIZES.values())
    for row in ledger:
        assert row["gain"] == pytest.approx(0.1, rel=1e-12)
        assert row["weight"] == pytest.approx(SIZES[row["client-id"]] / total, rel=1e-12)


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


# --- gains ----------------------------------------------------------------------------


def test_first_report_has_gain_zero_and_baseline_equal_to_signal():
    for mode in ("range", "ratio", "zscore", "difference"):
        gain, baseline = task_gain(TaskSignal(p=0.37, n=4), None, FgrpoParams(gain_mode=mode))
        assert gain == 0.0 and baseline == 0.37
    first = update_history(None, 0.37, FgrpoParams())
    assert first.baseline == 0.37 and first.reports == 1


def test_first_round_through_the_strategy_is_fedavg():
    ledger = run_rounds(strategy(), ROUNDS[:1], SIZES)[0]
    total = sum(SIZES.values())
    for row in ledger:
        assert row["gain"] == 0.0
        assert all(t["baseline"] == t["signal"] for t in row["tasks"].values())
        assert row["weight"] == pytest.approx(SIZES[row["client-id"]] / total, rel=1e-12)


def test_client_gain_is_the_rollout_weighted_mean_of_task_gains_then_clipped():
    history = {"ta": TaskHistory(baseline=0.5), "tb": TaskHistory(baseline=4.0)}
    signals = {
        "ta": TaskSignal(p=0.8, n=6, r_max=1.0),
        "tb": TaskSignal(p=3.0, n=2, r_max=10.0),
        "new": TaskSignal(p=0.9, n=4),
    }
    g, per_task = client_gain(signals, history, FgrpoParams(gain_mode="range"))
    # ta: 0.3/1, tb: -1/10, new (first report): 0  ->  (6*0.3 + 2*(-0.1) + 4*0) / 12
    assert per_task["ta"][0] == pytest.approx(0.3) and per_task["tb"][0] == pytest.approx(-0.1)
    assert g == pytest.approx((6 * 0.3 - 2 * 0.1) / 12)
    # ratio: ta 0.3/0.5 = 0.6, tb -1/4 = -0.25  ->  (6*0.6 - 2*0.25) / 12 = 0.258..., clipped at 0.1
    assert client_gain(signals, history, FgrpoParams(gain_mode="ratio"))[0] == pytest.approx(
        (3.6 - 0.5) / 12
    )
    assert client_gain(signals, history, FgrpoParams(gain_mode="ratio", g_max=0.1))[0] == 0.1


def test_batch_composition_alone_does_not_move_the_gain():
    """A non-learning client drawing a different task mix each round: per-task signals are flat."""
    rounds = [{"a": {"ta": (0.2, 12), "tb": (8.0, 4)}}, {"a": {"ta": (0.2, 2), "tb": (8.0, 14)}}]
    for mode in ("range", "ratio", "zscore", "difference"):
        ledger = run_rounds(strategy(gain_mode=mode), rounds, {"a": 10})[-1]
        assert ledger[0]["gain"] == 0.0


@pytest.mark.parametrize("mode", INVARIANT_MODES)
@pytest.mark.parametrize("scale", [1e-3, 1e3])
def test_scaling_one_clients_rewards_and_range_leaves_every_weight_unchanged(mode, scale):
    plain = run_rounds(strategy(gain_mode=mode), ROUNDS, SIZES)
    scaled_strategy = strategy(gain_mode=mode)
    scaled_strategy.task_ranges["tb"] = (0.0, 10.0 * scale)
    scaled = run_rounds(scaled_strategy, transform_b(ROUNDS, lambda p: p * scale), SIZES)
    np.testing.assert_allclose(weights_of(plain), weights_of(scaled), rtol=1e-9)
    assert not np.allclose(
        weights_of(plain)[1:], np.array(list(SIZES.values())) / sum(SIZES.values())
    )


@pytest.mark.parametrize("shift", [-7.0, 3.0])
def test_shifting_one_clients_rewards_and_range_leaves_range_weights_unchanged(shift):
    plain = run_rounds(strategy(gain_mode="range"), ROUNDS, SIZES)
    shifted_strategy = strategy(gain_mode="range")
    shifted_strategy.task_ranges["tb"] = (shift, 10.0 + shift)
    shifted = run_rounds(shifted_strategy, transform_b(ROUNDS, lambda p: p + shift), SIZES)
    np.testing.assert_allclose(weights_of(plain), weights_of(shifted), rtol=1e-9)
    # ratio is not shift-invariant: that is why range exists
    ratio_plain = run_rounds(strategy(gain_mode="ratio"), ROUNDS, SIZES)
    ratio_shifted = run_rounds(
        strategy(gain_mode="ratio"), transform_b(ROUNDS, lambda p: p + shift), SIZES
    )
    assert not np.allclose(weights_of(ratio_plain), weights_of(ratio_shifted))


@pytest.mark.parametrize("mode", INVARIANT_MODES + ["difference"])
def test_falling_client_gets_less_weight_than_rising_one(mode):
    rounds = [
        {"up": {"ta": (0.5, 8)}, "down": {"ta": (0.5, 8)}},
        {"up": {"ta": (0.6, 8)}, "down": {"ta": (0.4, 8)}},
        {"up": {"ta": (0.8, 8)}, "down": {"ta": (0.2, 8)}},
    ]
    ledger = run_rounds(strategy(gain_mode=mode, warmup_reports=2), rounds, {"up": 50, "down": 50})[
        -1
    ]
    by_id = {r["client-id"]: r for r in ledger}
    assert by_id["up"]["gain"] > 0 > by_id["down"]["gain"]
    assert by_id["up"]["weight"] > by_id["down"]["weight"]


def test_difference_mode_is_scale_sensitive():
    """The reference variant: the absolute change is not invariant, unlike range/ratio/zscore."""
    rounds = [
        {"a": {"ta": (0.5, 1)}, "b": {"tb": (0.5, 1)}},
        {"a": {"ta": (0.6, 1)}, "b": {"tb": (0.6, 1)}},
    ]
    w_plain = run_rounds(strategy(gain_mode="difference"), rounds, {"a": 1, "b": 1})[-1]
    w_scaled = run_rounds(
        strategy(gain_mode="difference"), transform_b(rounds, lambda p: p * 100), {"a": 1, "b": 1}
    )[-1]
    assert w_plain[0]["weight"] == pytest.approx(0.5)
    assert w_scaled[1]["weight"] > 0.9


def test_ratio_floors_a_zero_baseline_at_eps_times_the_range_and_the_client_gain_is_clipped():
    params = FgrpoParams(gain_mode="ratio", g_max=2.0, eps=1e-6)
    gain, _ = task_gain(TaskSignal(p=1.0, n=1), TaskHistory(baseline=0.0), params)
    assert gain == pytest.approx(1e6)
    on_ten = TaskSignal(p=10.0, n=1, r_min=0.0, r_max=10.0)  # the same move on a range 10x wider
    assert task_gain(on_ten, TaskHistory(baseline=0.0), params)[0] == pytest.approx(1e6)
    default = FgrpoParams(
        gain_mode="ratio"
    )  # eps 0.1 of the range: one row of 64 flipping at b = 0
    assert task_gain(TaskSignal(p=1 / 64, n=64), TaskHistory(baseline=0.0), default)[
        0
    ] == pytest.approx(10 / 64)
    assert (
        client_gain({"t": TaskSignal(p=1.0, n=1)}, {"t": TaskHistory(baseline=0.0)}, params)[0]
        == 2.0
    )
    assert (
        client_gain({"t": TaskSignal(p=-1.0, n=1)}, {"t": TaskHistory(baseline=0.0)}, params)[0]
        == -2.0
    )


def test_zscore_second_report_is_not_saturated():
    """The old rule gave a move from 0.5 to 0.5001 the maximal gain 1/(1 - beta) = 5."""
    after_one = update_history(None, 0.5, FgrpoParams())
    tiny_move = TaskSignal(p=0.5001, n=8, r_min=0.0, r_max=1.0)
    assert (
        task_gain(tiny_move, after_one, FgrpoParams(gain_mode="zscore"))[0] == 0.0
    )  # warm-up (default 3)
    gain, _ = task_gain(tiny_move, after_one, FgrpoParams(gain_mode="zscore", warmup_reports=1))
    assert gain == pytest.approx(
        0.0001 / 0.05
    )  # divided by the spread floor s_min * (r_max - r_min)


@pytest.mark.parametrize("warmup, first_counted", [(1, 2), (2, 2), (3, 3), (4, 4)])
def test_zscore_gain_first_counts_at_the_report_that_makes_warmup_reports(warmup, first_counted):
    """warmup_reports counts the current report: gain 0 until the client has that many (the first
    has no baseline)."""
    rounds = [{"a": {"ta": (0.1 * r, 4)}} for r in range(1, 6)]  # a rising signal 0.1, 0.2, ... 0.5
    ledgers = run_rounds(strategy(gain_mode="zscore", warmup_reports=warmup), rounds, {"a": 10})
    gains = [ledger[0]["gain"] for ledger in ledgers]
    assert [g != 0.0 for g in gains] == [report >= first_counted for report in range(1, 6)]
    # by hand, beta 0.8: report 2 (b 0.1, no past deviation): 0.1 / spread floor 0.05 = 2.0;
    # report 3 (b 0.12, spread 0.2·0.1 / (1 − 0.8) = 0.1): 0.18 / 0.1 = 1.8;
    # report 4 (b 0.156, spread (0.8·0.02 + 0.2·0.18) / (1 − 0.64) = 0.052 / 0.36): 0.244 / (0.052 /
    # 0.36)
    assert gains[first_counted - 1] == pytest.approx(
        {2: 2.0, 3: 1.8, 4: 0.244 / (0.052 / 0.36)}[first_counted]
    )


def test_zscore_spread_is_bias_corrected():
    params = FgrpoParams(gain_mode="zscore", beta=0.8)
    history = update_history(update_history(None, 0.5, params), 0.6, params)
    # b = 0.8*0.5 + 0.2*0.6 = 0.52; raw spread = 0.2*0.1 = 0.02, corrected 0.02 / (1 - 0.8) = 0.1
    assert history.baseline == pytest.approx(0.52) and history.spread == pytest.approx(0.02)
    gain, b = task_gain(TaskSignal(p=0.65, n=8), history, params)
    assert b == pytest.approx(0.52) and gain == pytest.approx(0.13 / 0.1)


def test_delta_gain_is_this_rounds_probe_improvement_over_the_range():
    params = FgrpoParams(gain_mode="delta")
    gain, before = task_gain(
        TaskSignal(p=4.0, n=8, r_min=0.0, r_max=5.0, p_before=3.0), None, params
    )
    assert gain == pytest.approx(0.2) and before == 3.0  # no history needed: a first report counts
    with pytest.raises(ValueError, match="received global model"):
        task_gain(TaskSignal(p=4.0, n=8), None, params)


def test_baseline_is_an_ema_per_client_and_task_updated_after_aggregation():
    fgrpo = strategy(beta=0.75)
    run_rounds(fgrpo, [{"a": {"ta": (1.0, 4), "tb": (5.0, 4)}}, {"a": {"ta": (2.0, 4)}}], {"a": 10})
    assert fgrpo.history["a"]["ta"].baseline == pytest.approx(0.75 * 1.0 + 0.25 * 2.0)
    assert fgrpo.history["a"]["ta"].reports == 2
    assert fgrpo.history["a"]["tb"] == TaskHistory(
        baseline=5.0
    )  # not reported in round 2: unchanged


# --- the strategy ----------------------------------------------------------------------


def test_aggregate_is_the_weighted_average_with_server_learning_rate():
    fgrpo = Fgrpo(
        setup=FgrpoSetup(task_ranges={"addition": (0.0, 1.0)}),
        server_lr=0.5,
        min_available_nodes=1,
        min_train_nodes=1,
    )
    fgrpo.global_arrays = {"w": np.array([1.0, 1.0], dtype=np.float32)}
    replies = [reply("a", {"w": [3.0, 1.0]}, 30, 0.1), reply("b", {"w": [1.0, 5.0]}, 10, 0.9)]
    arrays, metrics = fgrpo.aggregate_train(1, replies)
    assert isinstance(arrays, ArrayRecord)
    average = 0.75 * np.array([3.0, 1.0]) + 0.25 * np.array([1.0, 5.0])
    expected = 1.0 + 0.5 * (average - 1.0)
    np.testing.assert_allclose(arrays["w"].numpy(), expected, rtol=1e-6)
    assert metrics["reward"] == pytest.approx(0.75 * 0.1 + 0.25 * 0.9)


def test_ledger_logs_per_task_signals_baselines_gains_and_weights():
    ledger = run_rounds(strategy(gain_mode="range"), ROUNDS[:2], SIZES)[-1]
    a = next(row for row in ledger if row["client-id"] == "a")
    assert a["tasks"]["ta"] == {
        "signal": 0.35,
        "rollouts": 4,
        "baseline": 0.20,
        "gain": pytest.approx(0.15),
    }
    assert a["tasks"]["shared"]["gain"] == pytest.approx(0.5 / 5.0)
    assert a["gain"] == pytest.approx((4 * 0.15 + 8 * 0.1) / 12)
    e = [math.exp(row["gain"]) * SIZES[row["client-id"]] for row in ledger]
    assert [row["weight"] for row in ledger] == pytest.approx([x / sum(e) for x in e])


def test_a_reply_without_a_usable_signal_is_a_clear_error():
    fgrpo = strategy(gain_mode="range")
    fgrpo.global_arrays = {"w": np.zeros(1, dtype=np.float32)}
    with pytest.raises(ValueError, match="no declared reward range for task 'unknown'"):
        fgrpo.compute_weights(1, [_report(reply("a", {"w": [1.0]}, 5, 0.0, {"unknown": (0.5, 2)}))])
    with pytest.raises(ValueError, match="non-finite"):
        fgrpo.compute_weights(
            1, [_report(reply("a", {"w": [1.0]}, 5, 0.0, {"ta": (float("nan"), 2)}))]
        )
    with pytest.raises(ValueError, match="no 'signal/<task>'"):
        fgrpo.compute_weights(1, [_report(reply("a", {"w": [1.0]}, 5, 0.0, {}))])


def _report(message):
    return read_report(message.content)


def test_strategy_state_round_trips():
    fgrpo = strategy()
    run_rounds(fgrpo, ROUNDS[:2], SIZES)
    restored = strategy()
    restored.load_state_dict(fgrpo.state_dict())
    assert restored.history == fgrpo.history
