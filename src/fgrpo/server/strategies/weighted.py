"""Flower's FedAvg with pluggable client weights: the base of FGRPO and reward-weighted.

Only the weights differ from FedAvg; the weighted average itself is Flower's
``aggregate_arrayrecords``. The server step is θ ← θ + η · Σ_k w_k (θ_k − θ) (server_lr.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.serverapp.strategy import FedAvg
from flwr.serverapp.strategy.strategy_utils import aggregate_arrayrecords

from fgrpo.core.protocol import SIGNALS_RECORD_KEY, TASK_REWARDS_KEY, read_task_rewards
from fgrpo.server.strategies.server_lr import ServerLearningRate

WEIGHT_KEY = "aggregation-weight"
# FGRPO's per-task signals travel in their own ConfigRecord: Flower requires every reply's
# MetricRecord to have the same keys, and clients hold different tasks.


@dataclass
class ClientReport:
    """The numbers one client's reply carries (see fgrpo.client.app)."""

    client_id: str
    num_examples: float
    reward: float
    metrics: dict[str, float]
    signals: dict[str, float]  # the SIGNALS_RECORD_KEY record (FGRPO), empty otherwise
    task_rewards: dict[str, tuple[float, float]] = field(
        default_factory=dict
    )  # {task: (mean, rollouts)}


def read_report(content: RecordDict) -> ClientReport:
    metrics = dict(next(iter(content.metric_records.values())))
    client = content.config_records.get("client", ConfigRecord())
    return ClientReport(
        client_id=str(client.get("client-id", "unknown")),
        num_examples=float(metrics["num-examples"]),
        reward=float(metrics.get("reward", float("nan"))),
        metrics={k: float(v) for k, v in metrics.items() if not isinstance(v, list)},
        signals={
            k: float(v)
            for k, v in content.config_records.get(SIGNALS_RECORD_KEY, ConfigRecord()).items()
        },
        task_rewards=read_task_rewards(content.config_records.get(TASK_REWARDS_KEY)),
    )


def ledger_row(report: ClientReport, weight: float, **extra: Any) -> dict[str, Any]:
    """One participant's line in metrics.jsonl."""
    return {
        "client-id": report.client_id,
        "num-examples": int(report.num_examples),
        "reward": report.reward,
        "baseline": None,
        "gain": None,
        "weight": float(weight),
        # the screened update's norm (fgrpo.server.screening), where it was measured
        **(
            {"update-norm": float(report.metrics["update-norm"])}
            if "update-norm" in report.metrics
            else {}
        ),
        **(
            {
                "task-reward": {
                    t: {"mean": m, "rollouts": n} for t, (m, n) in report.task_rewards.items()
                }
            }
            if report.task_rewards
            else {}
        ),
        **extra,
    }


def data_size_weights(reports: list[ClientReport]) -> np.ndarray:
    """FedAvg's weights n_k / sum n."""
    sizes = np.array([r.num_examples for r in reports], dtype=np.float64)
    return sizes / sizes.sum()


class ClientWeightedFedAvg(ServerLearningRate, FedAvg):
    """FedAvg where ``compute_weights`` decides each client's share."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ledger: list[dict[str, Any]] = []

    def compute_weights(
        self, server_round: int, reports: list[ClientReport]
    ) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """Return normalised weights and the ledger rows that explain them."""
        raise NotImplementedError

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        valid, _ = self._check_and_log_replies(replies, is_train=True)
        self.ledger = []
        if not valid:
            return None, None
        contents = [m.content for m in valid]
        weights, self.ledger = self.compute_weights(
            server_round, [read_report(c) for c in contents]
        )
        weighted = [
            RecordDict(
                {
                    "arrays": next(iter(c.array_records.values())),
                    "w": MetricRecord({WEIGHT_KEY: float(w)}),
                }
            )
            for c, w in zip(contents, weights, strict=True)
        ]
        averaged = aggregate_arrayrecords(weighted, WEIGHT_KEY)
        return self.server_step(averaged), self.train_metrics_aggr_fn(
            contents, self.weighted_by_key
        )

    # Server-side state that must survive a restart (checkpoints, --resume).
    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        del state
