"""SCAFFOLD: the server's variate algebra, the client's correction under TRL's real AdamW
step, and the commit protocol that keeps c = mean of the clients' c_i."""

from __future__ import annotations

import json

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Message

from fgrpo.client.scaffold import client_variate_update, committed_variate, hold_pending
from fgrpo.core.protocol import ACCEPTED_KEY, DELTA_VARIATE_KEY, SERVER_VARIATE_KEY
from fgrpo.server.screening import screen_replies

from ..replies import reply, through_disk
from ..strategy_helpers import (
    ONE_TINY_CLIENT,
    FakeGrid,
    aggregate,
    client_context,
    configure,
    make,
    weights,
)


def scaffold_reply(cid: str, y: list[float], n: int, delta_c: list[float]) -> Message:
    message = reply(cid, {"w": y}, n, 0.1)
    message.content[DELTA_VARIATE_KEY] = ArrayRecord(
        {"w": Array(np.asarray(delta_c, dtype=np.float32))}
    )
    return message


def test_scaffold_sends_the_server_variate_and_updates_it_by_option_two():
    s = make("scaffold", "strategy.server_lr=1.0")
    messages = configure(s, [1.0, 1.0], nodes=4)
    np.testing.assert_array_equal(messages[0].content[SERVER_VARIATE_KEY]["w"].numpy(), [0.0, 0.0])
    got = aggregate(
        s,
        1,
        [
            scaffold_reply("a", [3.0, 1.0], 30, [0.2, -0.4]),
            scaffold_reply("b", [1.0, 5.0], 10, [0.6, 0.0]),
        ],
    )
    np.testing.assert_allclose(got, [1 + 0.75 * 2 + 0.25 * 0, 1 + 0.75 * 0 + 0.25 * 4], rtol=1e-6)
    # c += |S|/N * mean(delta c) = 2/4 * (0.4, -0.2)
    np.testing.assert_allclose(s.control["w"], [0.2, -0.1], rtol=1e-6)
    assert weights(s) == pytest.approx([0.75, 0.25])
    messages = configure(s, got.tolist(), nodes=4)
    np.testing.assert_allclose(
        messages[0].content[SERVER_VARIATE_KEY]["w"].numpy(), [0.2, -0.1], rtol=1e-6
    )
    assert json.loads(messages[0].content["config"][ACCEPTED_KEY]) == {"a": 1, "b": 1}


def test_scaffold_server_lr_scales_the_model_step_and_bad_deltas_are_skipped():
    s = make("scaffold", "strategy.server_lr=0.5")
    configure(s, [0.0, 0.0], nodes=2)
    bad = scaffold_reply("b", [9.0, 9.0], 10, [float("nan"), 0.0])
    got = aggregate(s, 1, [scaffold_reply("a", [2.0, 4.0], 30, [1.0, 1.0]), bad])
    np.testing.assert_allclose(got, [1.0, 2.0])  # only a: 0 + 0.5 * (2, 4)
    np.testing.assert_allclose(s.control["w"], [0.5, 0.5])  # 1/2 * (1, 1)
    assert [row["client-id"] for row in s.ledger] == ["a"] and s.accepted == {"a": 1}


def test_scaffold_state_round_trips_c_and_the_accepted_rounds(tmp_path):
    s = make("scaffold")
    configure(s, [0.0, 0.0], nodes=2)
    aggregate(s, 1, [scaffold_reply("a", [2.0, 4.0], 30, [1.0, -3.0])])
    restored = make("scaffold")
    restored.load_state_dict(through_disk(s.state_dict(), tmp_path))
    np.testing.assert_array_equal(restored.control["w"], [0.5, -1.5])
    assert restored.accepted == {"a": 1} and restored.num_clients == 2


def test_client_variate_follows_option_two():
    c_i, c = {"w": np.array([0.1, 0.0])}, {"w": np.array([0.3, -0.2])}
    x, y = {"w": np.array([1.0, 1.0])}, {"w": np.array([0.8, 1.5])}
    new, delta = client_variate_update(c_i, c, x, y, lr_sum=5 * 0.1)  # K = 5 steps at lr 0.1
    # c_i+ = c_i - c + (x - y) / (K lr)
    np.testing.assert_allclose(new["w"], [0.1 - 0.3 + 0.2 / 0.5, 0.0 + 0.2 - 0.5 / 0.5])
    np.testing.assert_allclose(delta["w"], new["w"] - c_i["w"])
    with pytest.raises(ValueError):
        client_variate_update(c_i, c, x, y, lr_sum=0.0)


def test_a_rejected_reply_leaves_c_the_mean_of_the_accepted_client_variates():
    """Three clients; round 1 c's reply is rejected (non-finite adapter), so its c_i+ must not
    count."""
    s = make("scaffold")
    contexts = {cid: client_context(i) for i, cid in enumerate("abc", start=1)}
    proposals = {
        "a": [1.0, 0.0],
        "b": [0.0, 2.0],
        "c": [3.0, 3.0],
    }  # each client's c_i+ after round 1
    like = {"w": np.zeros(2, dtype=np.float32)}
    for rnd in (1, 2):
        messages = configure(s, [0.0, 0.0], nodes=3)
        accepted = json.loads(messages[0].content["config"][ACCEPTED_KEY])
        c_i = {
            cid: committed_variate(ctx, accepted, cid, like)["w"] for cid, ctx in contexts.items()
        }
        if rnd == 2:
            break
        replies = []
        for cid, ctx in contexts.items():
            hold_pending(ctx, {"w": np.asarray(proposals[cid], dtype=np.float32)}, server_round=1)
            y = [float("nan"), 0.0] if cid == "c" else [0.5, 0.5]
            replies.append(
                scaffold_reply(cid, y, 10, (np.asarray(proposals[cid]) - c_i[cid]).tolist())
            )
        kept, failures = screen_replies(replies, like)
        assert len(failures) == 1 and len(kept) == 2
        aggregate(s, 1, kept)
    # c = 1/3 * ((1, 0) + (0, 2)); a and b committed their c_i+, c kept its old c_i = 0
    np.testing.assert_allclose(s.control["w"], [1 / 3, 2 / 3], rtol=1e-6)
    np.testing.assert_array_equal(c_i["c"], [0.0, 0.0])
    np.testing.assert_allclose(np.mean(list(c_i.values()), axis=0), s.control["w"], rtol=1e-6)


# --- the client's correction under TRL's real optimiser step --------------------------

TINY = [
    *ONE_TINY_CLIENT,
    "federation.local_steps=1",
    "grpo.learning_rate=0.01",
    "strategy.name=scaffold",
]


def length_reward(completions, **_) -> list[float]:
    """Varies across a random model's samples, so GRPO always has a non-zero advantage."""
    return [float(len(str(c))) for c in completions]


def test_correction_is_applied_in_parameter_space_after_the_real_adamw_step():
    """One GRPO step through the client's real path (plan_round + TRL's AdamW): with correction
    c − c_i = 0.5 the adapter ends exactly lr·0.5 below the uncorrected step, and c_i+ is the
    optimiser's own step per unit lr — at most 1 per coordinate for Adam's first step."""
    from fgrpo.client.algorithms import plan_round
    from fgrpo.client.grpo import train_locally
    from fgrpo.data.partitions import client_partition
    from fgrpo.models.lora import fresh_adapter_model
    from fgrpo.models.transport import (
        adapter_state,
        from_arrayrecord,
        load_adapter_state,
        to_arrayrecord,
    )
    from fgrpo.runtime.configs import load_config

    cfg = load_config(None, TINY)
    model, tokenizer = fresh_adapter_model(cfg.model, seed=0)
    data = client_partition(cfg, 0)
    train_locally(
        model, tokenizer, data, [length_reward], cfg, seed=1, steps=1
    )  # a start with B != 0
    x = adapter_state(model)
    train_locally(model, tokenizer, data, [length_reward], cfg, seed=7, steps=1)
    plain = adapter_state(model)

    s = make("scaffold")
    s.control = {k: np.full_like(v, 0.5) for k, v in x.items()}
    message = next(
        iter(
            s.configure_train(
                1, to_arrayrecord(x), ConfigRecord({"fgrpo-config": "{}"}), FakeGrid(1)
            )
        )
    )
    load_adapter_state(model, x)
    context = client_context(1)
    plan = plan_round(message, context, model, "client-0", data)
    assert plan.metrics["scaffold-correction-norm"] == pytest.approx(
        0.5 * sum(v.size for v in x.values()) ** 0.5
    )
    train_locally(
        model, tokenizer, data, [length_reward], cfg, seed=7, steps=1, **plan.trainer_kwargs
    )
    corrected = adapter_state(model)
    for k in x:  # θ ← θ_adam − lr · 0.5
        np.testing.assert_allclose(corrected[k], plain[k] - 0.01 * 0.5, atol=1e-6)

    delta_c = from_arrayrecord(plan.finish(model)[DELTA_VARIATE_KEY])
    for k in x:  # c_i+ = 0 − 0.5 + (x − y)/lr = (x − y_adam)/lr
        step = (x[k] - plain[k]) / 0.01
        np.testing.assert_allclose(delta_c[k], step, atol=1e-3)
        assert (
            np.abs(delta_c[k]).max() <= 1 + 1e-3
        )  # Adam's first step moves a coordinate by at most lr
    assert np.mean([np.abs(v).mean() for v in delta_c.values()]) > 0.1  # and it did move
    assert (
        "scaffold-c-i" not in context.state.array_records
    )  # pending until the server takes the reply
