"""The server loop's bookkeeping: screening replies, naming lost clients, the console line."""

from __future__ import annotations

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Error, Message, RecordDict

from fgrpo.core.protocol import DELTA_VARIATE_KEY
from fgrpo.models.transport import reply_record
from fgrpo.server.federation import name_failures, round_line
from fgrpo.server.screening import screen_replies

from ..replies import reply

SUPERLINK = 1


def sent_to(node: int, message_id: str) -> Message:
    message = Message(
        RecordDict({"config": ConfigRecord({"x": 1})}), dst_node_id=node, message_type="train"
    )
    message.metadata.__dict__["_message_id"] = message_id  # what Grid.push_messages does
    return message


def test_a_node_lost_mid_round_is_logged_under_its_own_node_and_client_id():
    ok = reply("client-3", {"w": [1.0]}, 10, 0.5)
    ok.metadata.__dict__["_src_node_id"] = 7
    lost = Message(Error(code=0, reason="node unavailable"), reply_to=sent_to(9, "m9"))
    lost.metadata.__dict__["_src_node_id"] = SUPERLINK  # the SuperLink answers for a lost node
    kept, failures = screen_replies([ok], {"w": np.zeros(1, dtype=np.float32)})
    known: dict[int, str] = {}
    name_failures(failures, kept, known)  # round 1: node 7 says it is client-3
    kept, failures = screen_replies(
        [lost], {"w": np.zeros(1, dtype=np.float32)}, {"m9": 9, "m7": 7}
    )
    name_failures(failures, kept, known)
    assert failures == [
        {"node": 9, "reason": "node unavailable", "kind": "error", "client-id": None}
    ]
    lost = Message(Error(code=0, reason="gone"), reply_to=sent_to(7, "m7b"))
    lost.metadata.__dict__["_src_node_id"] = SUPERLINK
    _, failures = screen_replies([lost], {"w": np.zeros(1, dtype=np.float32)}, {"m7b": 7})
    name_failures(failures, [], known)
    assert failures == [{"node": 7, "reason": "gone", "kind": "error", "client-id": "client-3"}]


def test_screening_rebuilds_a_bf16_update_against_the_sent_adapter_and_measures_it():
    sent = {"w": np.array([1.0, 2.0], dtype=np.float32)}
    message = reply("a", {"w": [0.0, 0.0]}, 10, 0.5)
    message.content["arrays"] = reply_record(
        {"w": np.array([1.5, 2.0], dtype=np.float32)}, sent, "bf16"
    )
    message.content[DELTA_VARIATE_KEY] = ArrayRecord(
        {"w": Array(np.asarray([0.5, 0.0], dtype=np.float32))}
    )
    kept, failures = screen_replies([message], sent)
    assert not failures
    np.testing.assert_array_equal(kept[0].content["arrays"]["w"].numpy(), [1.5, 2.0])
    assert kept[0].content["metrics"]["update-norm"] == 0.5
    wrong = reply("b", {"w": [0.0]}, 10, 0.5)
    wrong.content["arrays"] = reply_record(
        {"v": np.ones(1, dtype=np.float32)}, {"v": np.zeros(1)}, "bf16"
    )
    kept, failures = screen_replies([wrong], sent)
    assert (
        not kept
        and failures[0]["kind"] == "rejected"
        and "unknown tensor 'v'" in failures[0]["reason"]
    )


def test_console_weights_are_labelled_by_client_id_in_id_order():
    clients = [
        {"client-id": "client-1", "reward": 1.0, "weight": 0.75},
        {"client-id": "client-0", "reward": 0.0, "weight": 0.25},
    ]
    line = round_line(2, 5, {"clients": clients, "failures": [], "seconds": 1.0})
    assert "weights client-0 0.25 client-1 0.75" in line
