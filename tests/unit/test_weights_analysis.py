"""fgrpo.analysis.weights: the stalled-client and effective-clients figures the FGRPO signal
benchmarks report, on logged rounds whose numbers are worked out by hand."""

import math

import pytest

from fgrpo.analysis.weights import (
    FROM_ROUND,
    client_gains,
    effective_clients,
    gains_per_round,
    stalled_weight_ratio,
    with_weights,
)


def record(round_, weights, gains, sizes=(100, 300)):
    return {
        "round": round_,
        "clients": [
            {"client-id": f"client-{k}", "weight": w, "gain": g, "num-examples": n}
            for k, (w, g, n) in enumerate(zip(weights, gains, sizes, strict=True))
        ],
    }


# client-0 holds 100 of 400 examples: FedAvg gives it 0.25.
ROUNDS = [
    record(1, [0.9, 0.1], [None, None]),  # before FROM_ROUND: not counted
    record(2, [0.9, 0.1], [0.0, 0.0]),
    record(3, [0.125, 0.875], [0.0, 0.2]),
    record(4, [0.0625, 0.9375], [0.0, 0.4]),
]


def test_from_round_is_what_the_hand_numbers_assume():
    assert FROM_ROUND == 3


def test_stalled_weight_ratio_averages_the_logged_ratios_from_round_3():
    # (0.125 / 0.25 + 0.0625 / 0.25) / 2 = (0.5 + 0.25) / 2
    assert stalled_weight_ratio(ROUNDS, "client-0") == pytest.approx(0.375)
    assert stalled_weight_ratio(ROUNDS, "client-1") == pytest.approx((0.875 + 0.9375) / 0.75 / 2)
    assert math.isnan(stalled_weight_ratio(ROUNDS, "client-9"))


def test_replayed_weights_replace_the_logged_ones_and_leave_the_log_alone():
    replay = with_weights(ROUNDS, [[0.5, 0.5], [0.5, 0.5], [0.25, 0.75], [0.05, 0.95]])
    assert stalled_weight_ratio(replay, "client-0") == pytest.approx((1.0 + 0.2) / 2)
    assert effective_clients(replay) == pytest.approx((1 / 0.625 + 1 / 0.905) / 2)
    assert ROUNDS[2]["clients"][0]["weight"] == 0.125


def test_gains_per_round_pools_client_rounds_from_round_3():
    learners = gains_per_round(ROUNDS, lambda cid: cid != "client-0")
    assert learners["n"] == 2 and learners["mean"] == pytest.approx(0.3)
    assert learners["se"] == pytest.approx(math.sqrt(0.02) / math.sqrt(2))  # sd of {0.2, 0.4}


def test_client_gains_can_start_at_any_round_and_skip_unlogged_gains():
    assert client_gains(ROUNDS, first=1) == [0.0, 0.0, 0.0, 0.2, 0.0, 0.4]  # round 1 logged none
    assert client_gains(ROUNDS, lambda cid: cid == "client-1") == [0.2, 0.4]


def test_effective_clients_is_the_median_inverse_sum_of_squares():
    # rounds 3 and 4: 1 / (0.125^2 + 0.875^2) and 1 / (0.0625^2 + 0.9375^2)
    a, b = 1 / (0.125**2 + 0.875**2), 1 / (0.0625**2 + 0.9375**2)
    assert effective_clients(ROUNDS) == pytest.approx((a + b) / 2)
