"""model.lora_aggregation = fedsa (FedSA-LoRA): only A travels and is aggregated; each client's B
stays in its own state from round to round, and reaches the server only to be evaluated. Checked on
a real PEFT adapter of the tiny architecture and the registry's strategies."""

import numpy as np
import pytest
from datasets import Dataset
from flwr.app import ConfigRecord, RecordDict

from fgrpo.client.personal_lora import STATE_KEY, finish_round, start_state
from fgrpo.core.protocol import PERSONAL_B_KEY, SEND_PERSONAL_KEY, TASK_MIX_KEY
from fgrpo.models.lora import fresh_adapter_model
from fgrpo.models.lora_modes import A_SUFFIX, B_SUFFIX
from fgrpo.models.transport import adapter_state, from_arrayrecord, to_arrayrecord
from fgrpo.runtime.configs import load_config
from fgrpo.server.aggregation import aggregate_round
from fgrpo.server.lora_aggregation import PersonalFactors
from fgrpo.server.screening import ReplyScreen, claimed_client_id
from fgrpo.server.strategies import build_strategy

from ..replies import reply, through_disk
from ..screening_helpers import f32
from ..strategy_helpers import FakeGrid

TINY = [
    "model.name=tiny-random",
    "model.lora_r=4",
    "model.lora_alpha=8",
    "federation.num_clients=2",
]


def adapter() -> dict[str, np.ndarray]:
    model, _ = fresh_adapter_model(load_config(None, TINY).model, seed=0)
    return adapter_state(model)


def trained(start: dict[str, np.ndarray], seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {k: v + rng.normal(0, 0.05, v.shape).astype(np.float32) for k, v in start.items()}


def test_a_clients_b_starts_at_zero_stays_home_and_is_where_the_next_round_starts():
    template = adapter()
    received = {k: v for k, v in template.items() if k.endswith(A_SUFFIX)}  # the server's Ā
    state = RecordDict()
    first = start_state("fedsa", received, state, template)
    assert set(first) == set(template)
    assert all(
        not first[k].any() for k in first if k.endswith(B_SUFFIX)
    )  # PEFT's B before training
    after = trained(first, 1)
    data = Dataset.from_dict({"task": ["addition", "sorting", "addition"]})
    reply_state, extra = finish_round("fedsa", after, state, ConfigRecord({}), data)
    assert set(reply_state) == set(received) and not extra  # A only, and no B unless asked
    second_received = trained(received, 2)
    second = start_state("fedsa", second_received, state, template)
    for k in template:  # the new Ā with this client's own B, bit for bit
        expected = second_received[k] if k.endswith(A_SUFFIX) else after[k]
        np.testing.assert_array_equal(second[k], expected, err_msg=k)
    asked = ConfigRecord({SEND_PERSONAL_KEY: True})
    _, extra = finish_round("fedsa", after, state, asked, data)
    own = from_arrayrecord(extra[PERSONAL_B_KEY])
    assert set(own) == {k for k in template if k.endswith(B_SUFFIX)}
    assert dict(extra[TASK_MIX_KEY]) == {"addition": 2, "sorting": 1}
    assert STATE_KEY in state.array_records


def test_other_modes_send_and_start_from_the_whole_adapter():
    template = adapter()
    state = RecordDict()
    assert start_state("average", template, state, template) is template
    out, extra = finish_round("average", template, state, ConfigRecord({}), Dataset.from_dict({}))
    assert out is template and not extra and not state.array_records


@pytest.mark.parametrize("strategy_name", ["fedavg", "fgrpo"])
def test_the_server_aggregates_a_alone_keeps_each_b_and_evaluates_a_bar_plus_b_k(
    strategy_name, tmp_path
):
    cfg = load_config(
        None, [*TINY, f"strategy.name={strategy_name}", "model.lora_aggregation=fedsa"]
    )
    start = adapter()
    personal = PersonalFactors(cfg)
    shared = personal.shared(start)
    assert set(shared) == {k for k in start if k.endswith(A_SUFFIX)}
    strategy = build_strategy(cfg)
    reply("warm-up", {"w": [0.0]}, 1, 0.0)  # gives the test process a Flower task identity
    list(strategy.configure_train(1, to_arrayrecord(shared), ConfigRecord({}), FakeGrid(2)))
    clients = {"a": trained(start, 1), "b": trained(start, 2)}
    replies = []
    for cid, n in (("a", 30), ("b", 10)):
        message = reply(cid, {k: clients[cid][k] for k in shared}, n, 0.5)
        b = {k: v for k, v in clients[cid].items() if k.endswith(B_SUFFIX)}
        message.content[PERSONAL_B_KEY] = to_arrayrecord(b)
        message.content[TASK_MIX_KEY] = ConfigRecord({"addition": n})
        replies.append(message)
    personal.collect(replies)
    assert all(PERSONAL_B_KEY not in r.content.array_records for r in replies)  # never aggregated
    outcome = aggregate_round(strategy, 1, replies, shared, 1)
    weights = [row["weight"] for row in outcome.ledger]
    assert sum(weights) == pytest.approx(1.0)
    for k in shared:  # Ā: the strategy's weighted mean of the clients' A
        mean = sum(w * clients[c][k] for w, c in zip(weights, "ab", strict=True))
        np.testing.assert_allclose(outcome.state[k], mean, atol=1e-6)
    global_state = {**start, **outcome.state}
    seen = []
    scores = {"eval": {"addition": 0.5, "macro": 0.5}, "eval_se": {"addition": 0.1, "macro": 0.1}}
    local = personal.evaluate(global_state, lambda m: seen.append(m) or scores)
    assert sorted(local["clients"]) == ["a", "b"] and local["mean"]["own-mix"] == 0.5
    for cid, model in zip("ab", seen, strict=True):  # each client's model is Ā + B_k
        for k in start:
            expected = outcome.state[k] if k.endswith(A_SUFFIX) else clients[cid][k]
            np.testing.assert_array_equal(model[k], expected, err_msg=f"{cid} {k}")
    restored = PersonalFactors(cfg)
    rest = restored.restore(through_disk(personal.checkpointed({"x": 1}), tmp_path))
    assert rest == {"x": 1} and restored.task_mix == personal.task_mix
    for cid in "ab":  # a resumed server holds every B bit for bit
        for k, v in personal.b[cid].items():
            np.testing.assert_array_equal(restored.b[cid][k], v)


@pytest.mark.parametrize(
    "b, mix, reason",
    [
        ({"w.lora_B.weight": [1.0, 2.0]}, {"addition": 3}, "shape"),
        ({"w.lora_B.weight": [float("nan")]}, {"addition": 3}, "finite"),
        ({"w.lora_B.weight": [1.0]}, {"addition": -1}, "task-mix"),
        ({"v.lora_B.weight": [1.0]}, {"addition": 3}, "unknown tensor"),
    ],
)
def test_a_malformed_personal_b_rejects_the_reply_naming_the_defect(b, mix, reason):
    screen = ReplyScreen({"w.lora_A.weight": f32(0.0)}, personal={"w.lora_B.weight": f32(0.0)})
    fine = reply("fine", {"w.lora_A.weight": [0.5]}, 10, 0.5)
    bad = reply("bad", {"w.lora_A.weight": [0.5]}, 10, 0.5)
    for message, own in ((fine, {"w.lora_B.weight": [1.0]}), (bad, b)):
        message.content[PERSONAL_B_KEY] = to_arrayrecord({k: f32(*v) for k, v in own.items()})
        message.content[TASK_MIX_KEY] = ConfigRecord(mix if message is bad else {"addition": 3})
    kept, failures = screen.screen([fine, bad])
    assert [claimed_client_id(m.content) for m in kept] == ["fine"]
    assert [f["client-id"] for f in failures] == ["bad"] and reason in failures[0]["reason"]
