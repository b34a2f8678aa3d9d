"""Server-side screening of single client replies, without Ray: the catalogue of bad replies, error
replies, timeouts and outlier update norms, through fgrpo.server.screening."""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import pytest
from flwr.app import (
    Array,
    ArrayRecord,
    ConfigRecord,
    Context,
    Error,
    Message,
    MetricRecord,
    RecordDict,
)

from fgrpo.client.failure import reports_failure
from fgrpo.core.errors import ConfigError
from fgrpo.models.transport import BF16_SUFFIX, DELTA_SUFFIX, reply_record
from fgrpo.runtime.configs import load_config
from fgrpo.server.aggregation import aggregate_round, reply_screen
from fgrpo.server.federation import name_failures
from fgrpo.server.screening import missing_replies, screen_replies

from ..screening_helpers import SENT, U, f32, fedavg, good


def with_arrays(**tensors: np.ndarray) -> Message:
    message = good("bad")
    message.content["arrays"] = ArrayRecord({k: Array(v) for k, v in tensors.items()})
    return message


def without(record: str, key: str | None = None) -> Message:
    message = good("bad")
    if key is None:
        del message.content[record]
    else:
        content = message.content[record]
        message.content[record] = type(content)({k: v for k, v in content.items() if k != key})
    return message


def with_metrics(**metrics: object) -> Message:
    message = good("bad")
    message.content["metrics"] = MetricRecord({"num-examples": 10, "reward": 0.5, **metrics})
    return message


def with_client(value: object) -> Message:
    message = good("bad")
    message.content["client"] = ConfigRecord({"client-id": value})
    return message


def two_metric_records() -> Message:
    message = good("bad")
    message.content["more"] = MetricRecord({"x": 1.0})
    return message


def duplicate_tensor() -> Message:
    message = good("bad")
    bf16 = reply_record({"w": np.ones(2, dtype=np.float32)}, SENT, "bf16")
    message.content["arrays"] = ArrayRecord(
        {**dict(message.content["arrays"].items()), **dict(bf16.items())}
    )
    return message


# (bad reply, the reason screening must give)
BAD_REPLIES: dict[str, tuple[Callable[[], Message], str]] = {
    "no adapter": (lambda: without("arrays"), "no adapter ArrayRecord 'arrays'"),
    "unknown tensor": (
        lambda: with_arrays(w=f32(1, 1), u=U, v=f32(1)),
        "adapter: unknown tensor 'v'",
    ),
    "missing tensor": (lambda: with_arrays(w=f32(1, 1)), "adapter: missing tensor 'u'"),
    "wrong shape": (lambda: with_arrays(w=f32(1, 1, 1), u=U), "'w' has shape (3,), expected (2,)"),
    "int dtype": (
        lambda: with_arrays(w=np.array([1, 1]), u=U),
        "'w' has dtype int64, expected float32",
    ),
    "float64": (
        lambda: with_arrays(w=np.array([1.0, 1.0]), u=U),
        "'w' has dtype float64, expected float32",
    ),
    "bf16 key, fp32 bits": (
        lambda: with_arrays(**{"w" + DELTA_SUFFIX + BF16_SUFFIX: f32(1, 1)}, u=U),
        "'w' has dtype float32, expected int16",
    ),
    "tensor twice": (duplicate_tensor, "adapter: tensor 'w' sent twice"),
    "NaN": (lambda: with_arrays(w=f32(np.nan, 0), u=U), "adapter: non-finite values in 'w'"),
    "Inf": (lambda: with_arrays(w=f32(0, -np.inf), u=U), "adapter: non-finite values in 'w'"),
    "3e38": (
        lambda: with_arrays(w=f32(3e38, 3e38), u=U),
        "update: norm 4.24e+38 is outside the float32 range",
    ),
    "no num-examples": (
        lambda: without("metrics", "num-examples"),
        "metric 'num-examples' missing",
    ),
    "no reward": (lambda: without("metrics", "reward"), "metric 'reward' missing"),
    "same client twice": (lambda: good("fine"), "client id 'fine' already replied this round"),
    "negative num-examples": (
        lambda: with_metrics(**{"num-examples": -5}),
        "num-examples must be > 0, got -5",
    ),
    "NaN reward": (
        lambda: with_metrics(reward=float("nan")),
        "metric 'reward' is not a finite number",
    ),
    "list metric": (
        lambda: with_metrics(extra=[1.0, 2.0]),
        "metric 'extra' is not a finite number",
    ),
    "two MetricRecords": (
        two_metric_records,
        "expected one MetricRecord 'metrics', got ['metrics', 'more']",
    ),
    "no client id": (lambda: without("client"), "no client-id"),
    "numeric client id": (lambda: with_client(7), "no client-id"),
    "empty client id": (lambda: with_client(""), "no client-id"),
    "unexpected ArrayRecord": (
        lambda: _extra_record(),
        "ArrayRecords: unexpected ['stowaway'], missing []",
    ),
}


def _extra_record() -> Message:
    message = good("bad")
    message.content["stowaway"] = ArrayRecord({"w": Array(f32(0, 0)), "u": Array(U)})
    return message


@pytest.mark.parametrize("case", sorted(BAD_REPLIES))
def test_a_bad_reply_is_rejected_with_its_reason_and_the_good_one_kept(case):
    make_bad, reason = BAD_REPLIES[case]
    strategy = fedavg()
    kept, failures = reply_screen(strategy, load_config(None, []), SENT).screen(
        [good("fine"), make_bad()]
    )
    assert [m.content["client"]["client-id"] for m in kept] == ["fine"]
    assert len(failures) == 1 and failures[0]["kind"] == "rejected", failures
    assert reason in failures[0]["reason"]
    outcome = aggregate_round(strategy, 1, kept, SENT, min_clients=1)
    assert outcome.aggregated and [row["client-id"] for row in outcome.ledger] == ["fine"]


def test_when_every_reply_is_rejected_the_global_adapter_and_the_strategy_stay_as_they_were():
    strategy = fedavg()
    before = json.dumps(strategy.state_dict())
    replies = [
        make() for case, (make, _) in BAD_REPLIES.items() if case != "same client twice"
    ]  # alone, it is fine
    kept, failures = reply_screen(strategy, load_config(None, []), SENT).screen(replies)
    assert kept == [] and len(failures) == len(replies) >= 12
    assert all(f["kind"] == "rejected" and f["reason"] for f in failures)
    outcome = aggregate_round(strategy, 1, kept, SENT, min_clients=1)
    assert not outcome.aggregated and outcome.state is SENT and outcome.ledger == []
    assert outcome.reason == "0 usable replies, fewer than federation.min_clients = 1"
    assert json.dumps(strategy.state_dict()) == before


def test_error_replies_and_client_reported_failures_are_named_by_node_and_client():
    raised = Message(Error(code=0, reason="<class 'ValueError'>:<'boom'>"), reply_to=good("x"))
    raised.metadata.__dict__["_src_node_id"] = 4
    reported = Message(
        RecordDict(
            {"client": ConfigRecord({"client-id": "client-2", "error": "ZeroDivisionError: x"})}
        ),
        dst_node_id=0,
        message_type="train",
    )
    reported.metadata.__dict__["_src_node_id"] = 5
    kept, failures = screen_replies([raised, reported], SENT)
    name_failures(failures, [raised, reported], {4: "client-1"})
    assert kept == []
    assert failures == [
        {
            "node": 4,
            "client-id": "client-1",
            "kind": "error",
            "reason": "<class 'ValueError'>:<'boom'>",
        },
        {"node": 5, "client-id": "client-2", "kind": "error", "reason": "ZeroDivisionError: x"},
    ]


def test_a_raising_client_replies_with_its_id_and_the_error():
    def train(msg: Message, context: Context) -> Message:
        raise ZeroDivisionError("reward function exploded")

    guarded = reports_failure(lambda context: context.node_config["client-id"])(train)
    context = Context(
        run_id=1,
        node_id=3,
        node_config={"client-id": "client-9"},
        state=RecordDict(),
        run_config={},
    )
    answer = guarded(good("x"), context)
    assert dict(answer.content["client"]) == {
        "client-id": "client-9",
        "error": "ZeroDivisionError: reward function exploded",
    }
    _, failures = screen_replies([answer], SENT)
    assert failures[0]["client-id"] == "client-9" and failures[0]["kind"] == "error"


def test_nodes_that_did_not_reply_in_time_are_timeouts():
    answered = good("a")
    answered.metadata.__dict__["_reply_to_message_id"] = "m1"
    failures = missing_replies({"m1": 1, "m2": 2}, [answered], 30.0)
    assert failures == [
        {
            "node": 2,
            "client-id": None,
            "kind": "timeout",
            "reason": "no reply within federation.round_timeout = 30 s",
        }
    ]


def norms_screen(norms: list[float], ratio: float = 10.0) -> tuple[list[str], list[dict]]:
    replies = [good(f"c{i}", (x, 0.0)) for i, x in enumerate(norms)]
    kept, failures = screen_replies(replies, SENT, max_norm_ratio=ratio)
    return [m.content["client"]["client-id"] for m in kept], failures


def test_an_update_far_above_the_rounds_median_norm_is_rejected_from_three_replies_on():
    kept, failures = norms_screen([1.0, 1.2, 50.0])
    assert kept == ["c0", "c1"]
    assert (
        failures[0]["client-id"] == "c2"
        and "update norm 50 > 10 x the round's median 1.2" in failures[0]["reason"]
    )
    assert norms_screen([1.0, 1.2, 50.0], ratio=0)[0] == ["c0", "c1", "c2"]  # 0: off
    assert norms_screen([1.0, 1000.0])[0] == ["c0", "c1"]  # two replies: no median to speak of
    assert norms_screen([0.0, 0.0, 5.0])[0] == ["c0", "c1", "c2"]  # zero median: no scale


def test_max_norm_ratio_below_one_is_a_config_error():
    with pytest.raises(ConfigError, match="federation.max_norm_ratio"):
        load_config(None, ["federation.max_norm_ratio=0.5"])
