"""The strategy registry and its config keys, and what every strategy does with a round of replies."""

from __future__ import annotations

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, RecordDict

from fgrpo.core.errors import ConfigError
from fgrpo.core.protocol import DELTA_VARIATE_KEY, TASK_MIX_KEY
from fgrpo.runtime.configs import load_config
from fgrpo.server.screening import screen_replies
from fgrpo.server.strategies import STRATEGIES

from ..replies import reply
from ..strategy_helpers import (
    configure,
    make,
    two_replies,
    weights,
)


def test_registry_covers_the_issue_and_every_entry_has_a_description():
    expected = {
        "fedavg",
        "fedprox",
        "scaffold",
        "fedadam",
        "fedyogi",
        "fedadagrad",
        "fedavgm",
        "fedmedian",
        "fedtrimmedavg",
        "krum",
        "reward-weighted",
        "fgrpo",
        "fgrpo-adam",
        "local-only",
        "centralized",
    }
    assert set(STRATEGIES) == expected
    assert all(e.description and "\n" not in e.description for e in STRATEGIES.values())


def test_config_validates_strategy_name_and_constants():
    with pytest.raises(ConfigError) as err:
        load_config(None, ["strategy.name=fedsgd"])
    assert err.value.key == "strategy.name"
    for bad, key in [
        ("strategy.trim_beta=0.5", "strategy.trim_beta"),
        ("strategy.proximal_mu=-1", "strategy.proximal_mu"),
        ("strategy.krum_num_malicious=-1", "strategy.krum_num_malicious"),
        ("strategy.opt_beta_1=1.5", "strategy.opt_beta_1"),
        ("strategy.opt_tau=0", "strategy.opt_tau"),
    ]:
        with pytest.raises(ConfigError) as err:
            load_config(None, [bad])
        assert err.value.key == key


def test_config_keys_reach_the_strategies():
    assert make("fedprox", "strategy.proximal_mu=0.25").proximal_mu == 0.25
    adam = make(
        "fedadam",
        "strategy.opt_eta=0.05",
        "strategy.opt_beta_1=0.5",
        "strategy.opt_beta_2=0.75",
        "strategy.opt_tau=0.01",
        "grpo.learning_rate=0.002",
    )
    assert (adam.eta, adam.beta_1, adam.beta_2, adam.tau, adam.eta_l) == (
        0.05,
        0.5,
        0.75,
        0.01,
        0.002,
    )
    avgm = make("fedavgm", "strategy.server_momentum=0.5", "strategy.server_lr=0.7")
    assert (avgm.server_momentum, avgm.server_learning_rate) == (0.5, 0.7)
    assert make("fedtrimmedavg", "strategy.trim_beta=0.3").beta == 0.3
    assert make("krum", "strategy.krum_num_malicious=2").num_malicious_nodes == 2
    with pytest.raises(ValueError, match="centralized"):
        make("centralized")


# --- the federation loop's handling of replies ---------------------------------------


def test_screen_replies_widens_the_adapter_record_even_when_it_is_not_first():
    reply("warm-up", {"w": [0.0]}, 1, 0.0)
    content = RecordDict(
        {
            DELTA_VARIATE_KEY: ArrayRecord({"w": Array(np.asarray([0.5], dtype=np.float32))}),
            "arrays": ArrayRecord({"w": Array(np.asarray([1.0], dtype=np.float32))}),
            "metrics": two_replies()[0].content["metrics"],
            "client": ConfigRecord({"client-id": "a"}),
        }
    )
    sent = {"w": np.zeros(1, dtype=np.float32)}
    kept, failures = screen_replies(
        [Message(content=content, dst_node_id=0, message_type="train")], sent
    )
    assert len(kept) == 1 and not failures
    np.testing.assert_array_equal(kept[0].content["arrays"]["w"].numpy(), [1.0])
    np.testing.assert_array_equal(kept[0].content[DELTA_VARIATE_KEY]["w"].numpy(), [0.5])


@pytest.mark.parametrize("name", [n for n in STRATEGIES if n != "centralized"])
def test_every_strategy_logs_weights_that_sum_to_one_with_full_participation(name):
    s = make(name)
    configure(s, [0.0, 0.0], nodes=3)
    replies = [
        reply(c, {"w": [i, 2.0 * i]}, 10 * (i + 1), 0.1 * (i + 1)) for i, c in enumerate("abc")
    ]
    for m in replies:
        if name == "scaffold":
            m.content[DELTA_VARIATE_KEY] = ArrayRecord({"w": Array(np.zeros(2, dtype=np.float32))})
        m.content[TASK_MIX_KEY] = ConfigRecord({"addition": 1})  # local-only's
    arrays, _ = s.aggregate_train(1, replies)
    assert name == "local-only" or (arrays is not None and np.all(np.isfinite(arrays["w"].numpy())))
    assert [row["client-id"] for row in s.ledger] == ["a", "b", "c"]
    assert sum(weights(s)) == pytest.approx(1.0) and min(weights(s)) >= 0
