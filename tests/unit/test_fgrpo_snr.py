"""benchmarks/fgrpo_snr.py: the weights it simulates and its threshold check."""

import numpy as np

from fgrpo.analysis.snr import meets, weights


def test_weights_are_fgrpo_softmax_of_gains_over_tau():
    w = weights(np.array([0.0, np.log(3.0)]), 1.0)  # exp(0) : exp(ln 3) = 1 : 3
    assert np.allclose(w, [0.25, 0.75])
    assert np.allclose(weights(np.array([5.0, 5.0, 5.0, 5.0]), 0.1), 0.25)


def test_a_clean_signal_meets_the_thresholds_and_a_noisy_one_cannot():
    rng = np.random.default_rng
    assert meets(
        20.0, 10.0, rng(0)
    )  # 20 sd of signal: τ = 10 sd keeps the null flat and halves the stalled
    taus = np.geomspace(0.05, 50, 40)
    assert not any(meets(1.0, float(t), rng(0)) for t in taus)  # 1 sd: no τ does both
