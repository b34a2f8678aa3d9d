"""Flower's baseline strategies with an honest per-client ledger, and the naive reward-weighted
rule.

Flower computes every aggregate here; the mixin only records, for each client, the
weight it actually had in that aggregate (metrics.jsonl's ``weight``):

- FedAvg family (fedavg, fedprox, fedavgm, fedadam, fedyogi, fedadagrad): n_k / sum n,
  the weights of the average that the server step (plain, momentum or adaptive) consumes.
- fedmedian / fedtrimmedavg: the aggregate is coordinate-wise, so at coordinate j it equals
  sum_k a_k(j) x_k(j) with a_k(j) in {0, 1/m} (m the number of order statistics kept); the
  logged weight is a_k averaged over all coordinates. Ties are attributed by client order.
- krum: 1 for the client Krum selects, 0 for the others.

fedavg, fedprox, fedmedian, fedtrimmedavg and krum then take strategy.server_lr's step
(fgrpo.server.strategies.server_lr); FedAvgM takes it as Flower's server_learning_rate.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, Message, MetricRecord, RecordDict
from flwr.serverapp.strategy import (
    FedAdagrad,
    FedAdam,
    FedAvg,
    FedAvgM,
    FedMedian,
    FedProx,
    FedTrimmedAvg,
    FedYogi,
    Krum,
)
from flwr.serverapp.strategy.multikrum import select_multikrum

from fgrpo.core.config import Config
from fgrpo.server.strategies.server_lr import SteppedFlowerAggregate
from fgrpo.server.strategies.server_state import FedAvgMMomentum, FedOptMoments
from fgrpo.server.strategies.weighted import (
    ClientReport,
    ClientWeightedFedAvg,
    data_size_weights,
    ledger_row,
    read_report,
)
from fgrpo.tasks.rewards import reward_ranges


def _adapter_record(content: RecordDict) -> ArrayRecord:
    """The reply's adapter (key ``arrays``; else its only ArrayRecord)."""
    records = content.array_records
    return records["arrays"] if "arrays" in records else next(iter(records.values()))


def _flat(content: RecordDict) -> np.ndarray:
    """One client's adapter as a flat float64 vector, in the record's key order."""
    record = _adapter_record(content)
    return np.concatenate([record[k].numpy().astype(np.float64).ravel() for k in record])


def order_statistic_weights(contents: list[RecordDict], low: int, high: int) -> np.ndarray:
    """Mean over coordinates of each client's share when ranks [low, high) are averaged per
    coordinate."""
    stacked = np.stack([_flat(c) for c in contents])  # (clients, coordinates)
    ranks = np.argsort(np.argsort(stacked, axis=0, kind="stable"), axis=0, kind="stable")
    kept = (ranks >= low) & (ranks < high)
    return kept.mean(axis=1) / (high - low)


def median_ranks(n: int) -> tuple[int, int]:
    """numpy's median averages ranks [(n-1)//2, n//2]."""
    return (n - 1) // 2, n // 2 + 1


def trimmed_ranks(n: int, beta: float) -> tuple[int, int]:
    """Flower's trim_mean keeps ranks [int(beta n), n - int(beta n))."""
    cut = int(beta * n)
    return cut, n - cut


class Ledgered:
    """Mixin for Flower strategies: record ``self.ledger`` before Flower aggregates.

    Computed before calling Flower because FedMedian and FedTrimmedAvg pop the arrays
    out of the replies while aggregating.
    """

    ledger: list[dict[str, Any]]

    def client_weights(self, contents: list[RecordDict], reports: list[ClientReport]) -> np.ndarray:
        return data_size_weights(reports)

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = list(replies)
        contents = [m.content for m in replies if not m.has_error()]
        self.ledger = []
        if contents:
            reports = [read_report(c) for c in contents]
            weights = self.client_weights(contents, reports)
            self.ledger = [ledger_row(r, w) for r, w in zip(reports, weights, strict=True)]
        return super().aggregate_train(server_round, replies)  # type: ignore[misc]

    # Server-side state for checkpoints; Flower's stateful strategies add theirs (server_state).
    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        del state


class LedgeredFedAvg(SteppedFlowerAggregate, Ledgered, FedAvg):
    """Flower's FedAvg."""


class LedgeredFedProx(SteppedFlowerAggregate, Ledgered, FedProx):
    """Flower's FedProx: FedAvg on the server; sends ``proximal-mu`` to the clients."""


class LedgeredFedAvgM(FedAvgMMomentum, Ledgered, FedAvgM):
    """Flower's FedAvgM."""


class LedgeredFedAdam(FedOptMoments, Ledgered, FedAdam):
    """Flower's FedAdam."""


class LedgeredFedYogi(FedOptMoments, Ledgered, FedYogi):
    """Flower's FedYogi."""


class LedgeredFedAdagrad(FedOptMoments, Ledgered, FedAdagrad):
    """Flower's FedAdagrad."""


class LedgeredFedMedian(SteppedFlowerAggregate, Ledgered, FedMedian):
    """Flower's FedMedian (coordinate-wise median)."""

    def client_weights(self, contents: list[RecordDict], reports: list[ClientReport]) -> np.ndarray:
        return order_statistic_weights(contents, *median_ranks(len(contents)))


class LedgeredFedTrimmedAvg(SteppedFlowerAggregate, Ledgered, FedTrimmedAvg):
    """Flower's FedTrimmedAvg (coordinate-wise trimmed mean)."""

    def client_weights(self, contents: list[RecordDict], reports: list[ClientReport]) -> np.ndarray:
        return order_statistic_weights(contents, *trimmed_ranks(len(contents), self.beta))


class LedgeredKrum(SteppedFlowerAggregate, Ledgered, Krum):
    """Flower's Krum (keeps the one update closest to its n - f - 2 neighbours)."""

    def client_weights(self, contents: list[RecordDict], reports: list[ClientReport]) -> np.ndarray:
        chosen = select_multikrum(contents, self.num_malicious_nodes, self.num_nodes_to_select)
        sizes = np.array(
            [
                r.num_examples if any(c is s for s in chosen) else 0.0
                for c, r in zip(contents, reports, strict=True)
            ]
        )
        return sizes / sizes.sum()


def reward_floor(cfg: Config) -> float:
    """r_min: the lowest declared reward of the run's tasks, min_τ reward_range[0] ×
    data.reward_scale[τ].

    Fixed for the run: the lowest end of the declared reward ranges
    (fgrpo.tasks.rewards.reward_ranges; a data source declares reward_min, 0 for its checker's
    accuracy).
    """
    return min((low for low, _ in reward_ranges(cfg).values()), default=0.0)


def reward_weights(rewards: list[float], sizes: list[float], r_min: float) -> np.ndarray:
    """w_k ∝ n_k · (r_k − r_min): FedAvg's weights scaled by each client's raw mean reward above the
    floor.

    The naive, scale-sensitive rule. r_min is the run's declared reward floor, not the sampled
    clients' minimum, so a client at the floor gets weight 0 whoever else was sampled. A reward
    below the declared floor (a custom reward function outside its checker's range) counts as 0;
    if every client sits at the floor the weights are FedAvg's.
    """
    r, n = np.asarray(rewards, dtype=np.float64), np.asarray(sizes, dtype=np.float64)
    if r.size == 0:
        return r
    if not np.all(np.isfinite(r)):
        raise ValueError(f"reward-weighted: non-finite reward in {r.tolist()}")
    raw = n * np.maximum(r - r_min, 0.0)
    return raw / raw.sum() if raw.sum() > 0 else n / n.sum()


class RewardWeighted(ClientWeightedFedAvg):
    """FedAvg with weights n_k · (r_k − r_min) (see ``reward_weights``)."""

    def __init__(self, *, reward_min: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.reward_min = reward_min

    def compute_weights(
        self, server_round: int, reports: list[ClientReport]
    ) -> tuple[np.ndarray, list[dict[str, Any]]]:
        weights = reward_weights(
            [r.reward for r in reports], [r.num_examples for r in reports], self.reward_min
        )
        return weights, [
            ledger_row(r, w, signal=r.reward) for r, w in zip(reports, weights, strict=True)
        ]
