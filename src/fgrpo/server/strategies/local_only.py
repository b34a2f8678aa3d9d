"""The ``local-only`` reference point: no federation at all.

Every client trains its own adapter all run long: the server tells it (config key
``keep-local-model``) to continue from the adapter it keeps in its own state
(Flower's ``context.state``) instead of the global one. The server never sends a
client anything learned by another client. For evaluation it reports the
unweighted mean of the latest adapter of every client it has heard from; a
participant's ledger weight is its share 1/|known clients| in that mean (which
is never sent back for training).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg

from .weighted import ledger_row, read_report

KEEP_LOCAL_KEY = "keep-local-model"


class LocalOnly(FedAvg):
    """Clients never leave their own adapter; the global adapter is the mean of theirs."""

    def __init__(self, **fedavg_kwargs: Any) -> None:
        super().__init__(**fedavg_kwargs)
        self.client_models: dict[str, dict[str, np.ndarray]] = {}
        self.ledger: list[dict[str, Any]] = []

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        config[KEEP_LOCAL_KEY] = True
        return super().configure_train(server_round, arrays, config, grid)

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        valid, _ = self._check_and_log_replies(replies, is_train=True)
        self.ledger = []
        if not valid:
            return None, None
        contents = [m.content for m in valid]
        reports = [read_report(c) for c in contents]
        for report, content in zip(reports, contents, strict=True):
            self.client_models[report.client_id] = {
                k: a.numpy().astype(np.float64) for k, a in content["arrays"].items()
            }
        models = list(self.client_models.values())
        mean = {k: np.mean([m[k] for m in models], axis=0).astype(np.float32) for k in models[0]}
        self.ledger = [ledger_row(r, 1.0 / len(models)) for r in reports]
        metrics = self.train_metrics_aggr_fn(contents, self.weighted_by_key)
        return ArrayRecord({k: Array(v) for k, v in mean.items()}), metrics

    def state_dict(self) -> dict[str, Any]:
        return {"clients": sorted(self.client_models)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        del state  # client adapters live with the clients; the mean is rebuilt as they report
