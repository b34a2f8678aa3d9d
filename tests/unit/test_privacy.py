"""privacy.dp: Flower's DP wrappers clip and noise the aggregate (clipping checked by hand)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.supercore.differential_privacy import KEY_CLIPPING_NORM

from fgrpo.client.failure import reports_failure
from fgrpo.client.privacy import clip_when_asked
from fgrpo.core.errors import ConfigError
from fgrpo.runtime.configs import load_config
from fgrpo.server.screening import screen_replies
from fgrpo.server.strategies import build_strategy

from ..replies import reply
from ..strategy_helpers import aggregate, configure

# Sent adapter w = [0, 0]; a's update has norm 5, b's 0.5; equal example counts.
BIG, SMALL = [3.0, 4.0], [0.3, 0.4]


def dp_strategy(mode: str, *overrides: str):
    return build_strategy(
        load_config(
            None,
            ["strategy.name=fedavg", "federation.num_clients=2", f"privacy.dp={mode}", *overrides],
        )
    )


def test_server_side_clipping_scales_each_update_to_the_clipping_norm_before_averaging():
    strategy = dp_strategy(
        "server-fixed", "privacy.noise_multiplier=0.0", "privacy.clipping_norm=1.0"
    )
    configure(strategy, [0.0, 0.0])
    out = aggregate(
        strategy, 1, [reply("a", {"w": BIG}, 10, 0.5), reply("b", {"w": SMALL}, 10, 0.5)]
    )
    # a: [3, 4] * 1/5 = [0.6, 0.8]; b is inside the norm ball; mean = [0.45, 0.6]
    np.testing.assert_allclose(out, [0.45, 0.6], atol=1e-6)
    assert [row["weight"] for row in strategy.ledger] == [0.5, 0.5]  # the wrapped strategy's ledger
    assert strategy.state_dict() is not None


def test_server_side_noise_has_the_standard_deviation_noise_multiplier_times_clip_over_n():
    strategy = dp_strategy(
        "server-fixed", "privacy.noise_multiplier=2.0", "privacy.clipping_norm=0.5"
    )
    zeros = [0.0] * 20_000
    configure(strategy, zeros)
    # unchanged adapters (all rollouts rewarded alike): nothing to clip, and no division by their
    # zero norm
    out = aggregate(
        strategy, 1, [reply("a", {"w": zeros}, 10, 0.5), reply("b", {"w": zeros}, 10, 0.5)]
    )
    assert np.std(out) == pytest.approx(2.0 * 0.5 / 2, rel=0.03) and abs(np.mean(out)) < 0.02


def test_client_side_clipping_is_flowers_mod_on_the_clients_and_noise_on_the_server():
    strategy = dp_strategy(
        "client-fixed", "privacy.noise_multiplier=0.0", "privacy.clipping_norm=1.0"
    )
    sent = configure(strategy, [0.0, 0.0])[0]
    assert sent.content["config"][KEY_CLIPPING_NORM] == 1.0

    def trains_to(w: list[float]):
        return lambda msg, ctx: Message(
            RecordDict(
                {
                    "arrays": ArrayRecord({"w": Array(np.asarray(w, np.float32))}),
                    "metrics": MetricRecord({"num-examples": 10}),
                }
            ),
            reply_to=msg,
        )

    context = Context(run_id=1, node_id=1, node_config={}, state=RecordDict(), run_config={})
    clipped = clip_when_asked(sent, context, trains_to(BIG))
    np.testing.assert_allclose(clipped.content["arrays"]["w"].numpy(), [0.6, 0.8], rtol=1e-6)
    del sent.content["config"][
        KEY_CLIPPING_NORM
    ]  # another privacy.dp: the mod stays out of the way
    untouched = clip_when_asked(sent, context, trains_to(BIG))
    np.testing.assert_allclose(untouched.content["arrays"]["w"].numpy(), BIG)
    sent.content["config"][KEY_CLIPPING_NORM] = 1.0
    unchanged = clip_when_asked(sent, context, trains_to([0.0, 0.0]))  # no division by a zero norm
    np.testing.assert_allclose(unchanged.content["arrays"]["w"].numpy(), [0.0, 0.0])
    # the server trusts the clients' clipping: it only averages (and noises)
    out = aggregate(
        strategy, 1, [reply("a", {"w": BIG}, 10, 0.5), reply("b", {"w": SMALL}, 10, 0.5)]
    )
    np.testing.assert_allclose(out, [1.65, 2.2], atol=1e-6)


def test_a_failing_clients_own_error_reaches_the_server_through_client_side_clipping():
    strategy = dp_strategy("client-fixed", "privacy.clipping_norm=1.0")
    sent = configure(strategy, [0.0, 0.0])[0]

    @reports_failure(lambda context: "client-7")
    def fails(msg, context):
        raise ValueError("reward function raised on row 3")

    context = Context(run_id=1, node_id=1, node_config={}, state=RecordDict(), run_config={})
    answer = clip_when_asked(sent, context, fails)
    kept, failures = screen_replies([answer], {"w": np.zeros(2, dtype=np.float32)})
    assert kept == []
    assert [(f["client-id"], f["kind"], f["reason"]) for f in failures] == [
        ("client-7", "error", "ValueError: reward function raised on row 3")
    ]


@pytest.mark.parametrize(
    "overrides, culprit",
    [
        (["privacy.dp=laplace"], "privacy.dp"),
        (["privacy.dp=server-fixed", "strategy.name=scaffold"], "privacy.dp"),
        (["privacy.dp=server-fixed", "strategy.name=local-only"], "privacy.dp"),
        (["privacy.dp=client-fixed", "model.transport_dtype=bf16"], "privacy.dp"),
        (["privacy.clipping_norm=0.0"], "privacy.clipping_norm"),
        (["privacy.noise_multiplier=-1.0"], "privacy.noise_multiplier"),
    ],
)
def test_privacy_options_that_cannot_work_are_refused_naming_the_key(overrides, culprit):
    with pytest.raises(ConfigError) as raised:
        load_config(None, overrides)
    assert raised.value.key == culprit


def test_no_dp_is_the_bare_strategy():
    assert type(dp_strategy("none")).__name__ == "LedgeredFedAvg"


@pytest.mark.slow
def test_a_simulated_run_with_client_side_clipping_sends_no_update_longer_than_the_norm(tmp_path):
    from fgrpo.runtime.runner import run_experiment

    cfg = load_config(
        None,
        [
            "model.name=tiny",
            'data.tasks=["sorting", "addition"]',
            "data.train_size=32",
            "data.test_size=4",
            "grpo.max_completion_length=32",
            "federation.num_clients=2",
            "federation.rounds=2",
            "federation.local_steps=2",
            "grpo.per_device_train_batch_size=8",
            "eval.every=0",
            "privacy.dp=client-fixed",
            "privacy.clipping_norm=0.001",
            "privacy.noise_multiplier=0.0",
        ],
    )
    run_experiment(cfg, tmp_path)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["failures"] for r in records] == [[], []]
    norms = [r["train"]["update-norm"] for r in records]  # mean over clients of ||theta_k - theta||
    # one unclipped Adam step moves each LoRA weight by ~lr = 1e-3, a norm far above C = 0.001
    assert max(norms) > 0 and all(n <= 0.001 + 1e-7 for n in norms)
