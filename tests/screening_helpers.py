"""Shared by the update-screening tests: the adapter the server sent, a good reply to it, and a
registry strategy that has sent it."""

from __future__ import annotations

import numpy as np
from flwr.app import ConfigRecord, Message

from fgrpo.models.transport import to_arrayrecord
from fgrpo.runtime.configs import load_config
from fgrpo.server.strategies import build_strategy

from .replies import reply
from .strategy_helpers import FakeGrid

SENT = {"w": np.array([0.0, 0.0], dtype=np.float32), "u": np.array([1.0], dtype=np.float32)}


def good(
    cid: str = "ok", w: tuple[float, float] = (0.5, -0.5), n: int = 10, **metrics: float
) -> Message:
    return reply(cid, {"w": list(w), "u": [1.0]}, n, 0.5, **metrics)


f32 = lambda *v: np.asarray(v, dtype=np.float32)  # noqa: E731
U = f32(1.0)


def configured(*overrides: str):
    """A registry strategy that has sent SENT to 2 nodes."""
    strategy = build_strategy(load_config(None, ["federation.num_clients=4", *overrides]))
    good("warm-up")  # gives the test process a Flower task identity
    list(
        strategy.configure_train(
            1, to_arrayrecord(SENT), ConfigRecord({"fgrpo-config": "{}"}), FakeGrid(2)
        )
    )
    return strategy


def fedavg():
    return configured("strategy.name=fedavg")
