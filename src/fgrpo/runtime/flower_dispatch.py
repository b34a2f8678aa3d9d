"""Flower's simulation dispatcher, asking only the nodes that have a message waiting.

Flower 1.42's simulation runtime (``flwr.server.superlink.fleet.vce.vce_api``) polls every 0.1 s:
``add_messages_to_queue`` asks the LinkState for the next message of *every* simulated node, and
each ask scans and re-validates every stored message. With 1000 nodes and 10 sampled per round the
server process spends a good part of a core on that, competing with the clients (part d of
benchmarks/results/perf.md). This replacement first collects the nodes that have an undelivered
message and asks only those, in the same node order and through the same LinkState call, so what
is delivered, when, and which expired messages are dropped is unchanged.
"""

from __future__ import annotations

import threading
from queue import Queue
from typing import Any

from flwr.server.superlink.fleet.vce import vce_api

FLOWER_LOOP = vce_api.add_messages_to_queue  # what install() replaces (the tests compare the two)


def waiting_nodes(state: Any) -> set[int] | None:
    """Destination nodes of undelivered messages; None for a LinkState we cannot look into."""
    store, lock = getattr(state, "message_ins_store", None), getattr(state, "lock", None)
    if store is None or lock is None:
        return None
    with lock:
        return {m.metadata.dst_node_id for m in store.values() if m.metadata.delivered_at == ""}


def add_messages_to_queue(
    state: Any, queue: Queue, nodes_mapping: dict[int, int], f_stop: threading.Event
) -> None:
    """Flower's loop (same signature), skipping the nodes with nothing waiting."""
    while not f_stop.is_set():
        waiting = waiting_nodes(state)
        for node_id in nodes_mapping:
            if waiting is not None and node_id not in waiting:
                continue
            for msg in state.get_message_ins(node_id=node_id, limit=1):
                queue.put(msg)
        f_stop.wait(0.1)


def install() -> None:
    """Use the replacement in this process's simulations (run_api looks the name up when it
    starts)."""
    vce_api.add_messages_to_queue = add_messages_to_queue
