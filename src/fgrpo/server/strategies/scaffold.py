"""SCAFFOLD (Karimireddy et al., 2020), option II, on the LoRA adapter. Flower has no SCAFFOLD.

Per round, with global adapter x and server control variate c:

- server -> client: x (``arrays``), c (ArrayRecord ``scaffold-c``) and, in the config,
  ``scaffold-accepted``: per client id, the last round whose reply the server aggregated;
- client i (fgrpo.client.scaffold): commits its pending c_i if the server took it, starts
  from y_i = x, applies θ ← θ − lr_t (c − c_i) after every local optimiser step, and sets
  (option II) c_i+ = c_i − c + (x − y_i) / Σ_t lr_t, kept pending in its ``context.state``;
  it replies with y_i and delta c_i = c_i+ − c_i (ArrayRecord ``scaffold-delta-c``);
- server: x <- x + eta_g * sum_k w_k (y_k - x) with w_k = n_k / sum n (FedAvg's weights, so the
  comparison with FedAvg isolates the drift correction; eta_g = strategy.server_lr),
  and c <- c + |S| / N * mean_k(delta c_k) over the replies it aggregated, N = number of
  connected clients. A client commits c_i+ only when its reply was aggregated, so
  c = mean_i c_i holds for the whole run, rejected and lost replies included.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from logging import WARNING
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg
from flwr.supercore import log

from fgrpo.core.protocol import ACCEPTED_KEY, DELTA_VARIATE_KEY, SERVER_VARIATE_KEY
from fgrpo.server.strategies.server_lr import ServerLearningRate
from fgrpo.server.strategies.weighted import data_size_weights, ledger_row, read_report


def server_variate_update(
    c: dict[str, np.ndarray], deltas: list[dict[str, np.ndarray]], num_clients: int
) -> dict[str, np.ndarray]:
    """c + |S|/N * mean(delta c) over the participants S."""
    if not deltas:
        return c
    share = len(deltas) / num_clients
    return {k: c[k] + share * np.mean([d[k] for d in deltas], axis=0) for k in c}


class Scaffold(ServerLearningRate, FedAvg):
    """SCAFFOLD's server: FedAvg-weighted model step plus the server control variate."""

    reply_arrays = (
        DELTA_VARIATE_KEY,
    )  # screening checks Δc_i like the adapter (names, shapes, finite)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.control: dict[str, np.ndarray] | None = None  # c
        self.num_clients = 0  # N, counted when a round is configured
        self.accepted: dict[str, int] = {}  # client id -> last round its reply was aggregated
        self.ledger: list[dict[str, Any]] = []

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        if self.control is None:
            self.control = {
                k: np.zeros_like(a.numpy(), dtype=np.float32) for k, a in arrays.items()
            }
        self.num_clients = max(
            self.num_clients, len(list(grid.get_node_ids()))
        )  # a lost node keeps its c_i
        config[ACCEPTED_KEY] = json.dumps(self.accepted, sort_keys=True)
        messages = list(super().configure_train(server_round, arrays, config, grid))
        variate = ArrayRecord({k: Array(v.astype(np.float32)) for k, v in self.control.items()})
        for message in messages:
            message.content[SERVER_VARIATE_KEY] = variate
        return messages

    def _delta(self, content: Any) -> dict[str, np.ndarray] | None:
        if DELTA_VARIATE_KEY not in content.array_records:
            return None
        delta = {k: a.numpy().astype(np.float32) for k, a in content[DELTA_VARIATE_KEY].items()}
        assert self.control is not None
        if set(delta) != set(self.control) or any(
            delta[k].shape != self.control[k].shape or not np.all(np.isfinite(delta[k]))
            for k in delta
        ):
            return None
        return delta

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        # validate=False: SCAFFOLD replies carry two ArrayRecords (adapter, delta c).
        valid, _ = self._check_and_log_replies(replies, is_train=True, validate=False)
        self.ledger = []
        if self.global_arrays is None or self.control is None:
            raise RuntimeError("SCAFFOLD: configure_train must run before aggregate_train")
        used, deltas = [], []
        for message in valid:
            delta = self._delta(message.content)
            if delta is None:
                log(
                    WARNING,
                    "SCAFFOLD: reply from node %s has no usable '%s'; skipped",
                    message.metadata.src_node_id,
                    DELTA_VARIATE_KEY,
                )
                continue
            used.append(message.content)
            deltas.append(delta)
        if not used:
            return None, None
        reports = [read_report(c) for c in used]
        weights = data_size_weights(reports)
        average = {k: np.zeros_like(v, dtype=np.float64) for k, v in self.global_arrays.items()}
        for content, w in zip(used, weights, strict=True):
            for k, a in content["arrays"].items():
                average[k] += w * a.numpy().astype(np.float64)
        new_x = self.server_step(
            ArrayRecord({k: Array(v.astype(np.float32)) for k, v in average.items()})
        )
        self.control = server_variate_update(
            self.control, deltas, max(self.num_clients, len(deltas))
        )
        self.accepted.update({r.client_id: server_round for r in reports})
        self.ledger = [ledger_row(r, w) for r, w in zip(reports, weights, strict=True)]
        metrics = self.train_metrics_aggr_fn(used, self.weighted_by_key)
        return new_x, metrics

    def state_dict(self) -> dict[str, Any]:
        """c, N and the accepted-round ledger: what a restarted server needs to keep c = mean
        c_i."""
        return {
            "num-clients": self.num_clients,
            "accepted": dict(self.accepted),
            "control": self.control,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.num_clients = int(state.get("num-clients", 0))
        self.accepted = {str(k): int(v) for k, v in state.get("accepted", {}).items()}
        control = state.get("control")
        self.control = (
            None
            if control is None
            else {k: np.asarray(v, dtype=np.float32) for k, v in control.items()}
        )
