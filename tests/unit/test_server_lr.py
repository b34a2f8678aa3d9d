"""``strategy.server_lr``: θ ← θ + η (aggregate − θ) wherever adapters are aggregated, refused
elsewhere."""

from __future__ import annotations

import numpy as np
import pytest

from fgrpo.cli.main import main
from fgrpo.core.errors import ConfigError
from fgrpo.runtime.configs import load_config
from fgrpo.server.strategies import STRATEGIES

from ..strategy_helpers import aggregate, configure, make, two_replies

# θ = (1, 1); the two replies' FedAvg average is (2.5, 2.0) (weights 0.75, 0.25);
# η = 0.5: θ + 0.5 · ((2.5, 2.0) − (1, 1)) = (1.75, 1.5).
THETA, STEPPED = [1.0, 1.0], [1.75, 1.5]


def stepped(name: str, lr: float) -> np.ndarray:
    s = make(name, f"strategy.server_lr={lr}")
    configure(s, THETA)
    return aggregate(s, 1, two_replies())


def test_fedavg_and_fgrpo_with_equal_gains_take_the_same_server_step():
    # A first report has gain 0 for every client, so FGRPO's weights are FedAvg's.
    fedavg, fgrpo = stepped("fedavg", 0.5), stepped("fgrpo", 0.5)
    np.testing.assert_allclose(fedavg, STEPPED, rtol=1e-6)
    np.testing.assert_array_equal(fgrpo, fedavg)


@pytest.mark.parametrize(
    "name", ["fedprox", "fedmedian", "fedtrimmedavg", "krum", "reward-weighted"]
)
def test_every_aggregating_strategy_steps_half_way_to_its_own_aggregate(name):
    full = stepped(name, 1.0)
    np.testing.assert_allclose(
        stepped(name, 0.5), np.asarray(THETA) + 0.5 * (full - np.asarray(THETA)), rtol=1e-6
    )
    assert not np.allclose(full, THETA)  # the step is visible


@pytest.mark.parametrize("name", [n for n, e in STRATEGIES.items() if e.without_server_lr])
def test_strategies_without_the_step_refuse_a_server_lr_but_accept_the_default(name):
    with pytest.raises(ConfigError) as err:
        load_config(None, [f"strategy.name={name}", "strategy.server_lr=0.5"])
    assert err.value.key == "strategy.server_lr" and name in str(err.value)
    assert (
        load_config(None, [f"strategy.name={name}", "strategy.server_lr=1.0"]).strategy.name == name
    )


def test_the_refusal_covers_the_adaptive_optimizers_and_the_references():
    refused = {n for n, e in STRATEGIES.items() if e.without_server_lr}
    assert refused == {
        "fedadam",
        "fedyogi",
        "fedadagrad",
        "fgrpo-adam",
        "local-only",
        "centralized",
    }


def test_the_cli_refuses_it_in_one_line(capsys):
    assert (
        main(
            [
                "data",
                "describe",
                "--set",
                "strategy.name=fedadam",
                "--set",
                "strategy.server_lr=0.5",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert (
        len(err.strip().splitlines()) == 1
        and "strategy.server_lr" in err
        and "strategy.opt_eta" in err
    )
