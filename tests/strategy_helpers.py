"""Shared by the strategy tests: a fake Grid, building a registry strategy, one configure/aggregate
round on hand-built replies, the two standard clients, and a client-side Context."""

from __future__ import annotations

import math

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, RecordDict

from fgrpo.runtime.configs import load_config
from fgrpo.server.strategies import build_strategy

from .replies import reply


class FakeGrid:
    """What Flower's sampling needs from a Grid: the connected node ids."""

    def __init__(self, n: int) -> None:
        self.nodes = list(range(1, n + 1))

    def get_node_ids(self) -> list[int]:
        return self.nodes


# The rollout-reward signal at tau = 1: replies carry per-task training rewards, weights worked by
# hand.
BY_HAND = ("strategy.signal=train-reward", "strategy.tau=1.0")


def make(name: str, *overrides: str):
    cfg = load_config(None, [f"strategy.name={name}", "federation.num_clients=8", *overrides])
    return build_strategy(cfg)


def configure(strategy, x: list[float], nodes: int = 2) -> list[Message]:
    reply("warm-up", {"w": [0.0]}, 1, 0.0)  # gives the test process a Flower task identity
    arrays = ArrayRecord({"w": Array(np.asarray(x, dtype=np.float32))})
    return list(
        strategy.configure_train(1, arrays, ConfigRecord({"fgrpo-config": "{}"}), FakeGrid(nodes))
    )


def aggregate(strategy, rnd: int, replies: list[Message]) -> np.ndarray:
    arrays, _ = strategy.aggregate_train(rnd, replies)
    return arrays["w"].numpy()


def weights(strategy) -> list[float]:
    return [row["weight"] for row in strategy.ledger]


# Two clients used throughout: a has 30 examples, b has 10.
def two_replies(ra: float = 0.5, rb: float = 0.3) -> list[Message]:
    return [reply("a", {"w": [3.0, 1.0]}, 30, ra), reply("b", {"w": [1.0, 5.0]}, 10, rb)]


FEDAVG = [0.75 * 3 + 0.25 * 1, 0.75 * 1 + 0.25 * 5]  # [2.5, 2.0]


def adam_by_hand(x0, d, eta, b1, b2, tau, rnd):
    m = (1 - b1) * d
    v = (1 - b2) * d * d
    eta_norm = eta * math.sqrt(1 - b2 ** (rnd + 1)) / (1 - b1 ** (rnd + 1))
    return x0 + eta_norm * m / (math.sqrt(v) + tau)


OPT = [
    "strategy.opt_eta=0.1",
    "strategy.opt_beta_1=0.9",
    "strategy.opt_beta_2=0.99",
    "strategy.opt_tau=0.001",
]


def client_context(node: int) -> Context:
    return Context(run_id=1, node_id=node, node_config={}, state=RecordDict(), run_config={})


# One client of the random tiny model on a small sorting pool: the base of the client-side tests'
# configs (each adds its own steps, batch and learning rate).
ONE_TINY_CLIENT = [
    "model.name=tiny-random",
    'data.tasks=["sorting"]',
    "data.train_size=32",
    "data.test_size=4",
    "grpo.max_completion_length=8",
    "federation.num_clients=1",
]
