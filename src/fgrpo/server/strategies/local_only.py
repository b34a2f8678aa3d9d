"""The ``local-only`` reference point: no federation at all.

Every client trains its own adapter all run long: the server tells it (config key
``keep-local-model``) to continue from the adapter it keeps in its own state
(Flower's ``context.state``) instead of the global one, and the global adapter never
changes, so no client ever starts from anything another client learned. Each reply
carries the client's adapter and its partition's task counts (``task-mix``); on
evaluation rounds the server evaluates every client's latest adapter: accuracy on the
global test set and on the client's own task mix (test accuracy per task weighted by
its partition's task proportions), and the means over clients. A participant's ledger
weight is its share 1/|known clients| in those means.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from statistics import fmean
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg

from fgrpo.core.protocol import KEEP_LOCAL_KEY, TASK_MIX_KEY, read_task_mix
from fgrpo.server.strategies.weighted import ClientReport, ledger_row, read_report


def own_mix_accuracy(accuracy: dict[str, float], mix: dict[str, int]) -> float:
    """Σ_τ n_τ acc_τ / Σ_τ n_τ over the client's tasks that have a test set."""
    counts = {task: n for task, n in mix.items() if task in accuracy and n > 0}
    if not counts:
        raise ValueError(f"no test set for any of the client's tasks {sorted(mix)}")
    return sum(n * accuracy[task] for task, n in counts.items()) / sum(counts.values())


def mean_scores(scores: list[dict[str, Any]]) -> dict[str, float]:
    """Per-key mean of the numeric entries (accuracy per task and ``macro``)."""
    return {
        k: fmean(s[k] for s in scores) for k, v in scores[0].items() if isinstance(v, int | float)
    }


def evaluate_client_models(
    models: dict[str, dict[str, np.ndarray]],
    task_mix: dict[str, dict[str, int]],
    evaluate: Callable[[dict[str, np.ndarray]], dict[str, Any]],
) -> dict[str, Any]:
    """Every client's own adapter on the global test set and on its own task mix, and the means
    (local-only; fedsa's Ā + B_k).

    ``evaluate`` returns a metrics line's ``eval`` (accuracy per task) and ``eval_se``; the mean's
    standard error is the mean of the clients' (conservative: they share the prompts).
    """
    clients = {}
    for cid in sorted(models):
        scores = evaluate(models[cid])
        clients[cid] = {
            "global": scores["eval"],
            "global_se": scores["eval_se"],
            "own-mix": own_mix_accuracy(scores["eval"], task_mix[cid]),
        }
    return {
        "clients": clients,
        "mean": {
            "global": mean_scores([c["global"] for c in clients.values()]),
            "global_se": mean_scores([c["global_se"] for c in clients.values()]),
            "own-mix": fmean(c["own-mix"] for c in clients.values()),
        },
    }


class LocalOnly(FedAvg):
    """Clients never leave their own adapter; the server only evaluates them."""

    def __init__(self, **fedavg_kwargs: Any) -> None:
        super().__init__(**fedavg_kwargs)
        self.client_models: dict[str, dict[str, np.ndarray]] = {}
        self.task_mix: dict[str, dict[str, int]] = {}
        self.ledger: list[dict[str, Any]] = []

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        config[KEEP_LOCAL_KEY] = True
        return super().configure_train(server_round, arrays, config, grid)

    def check_reply(self, content: RecordDict, report: ClientReport) -> None:
        """Screening (fgrpo.server.screening): the reply's task mix must be counts of examples."""
        try:
            read_task_mix(content.config_records.get(TASK_MIX_KEY))
        except ValueError as err:
            raise ValueError(f"client {report.client_id}: {err}") from None

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Keep each client's latest adapter and task mix; the global adapter stays as it is
        (None)."""
        valid, _ = self._check_and_log_replies(replies, is_train=True, validate=False)
        self.ledger = []
        contents = [m.content for m in valid if TASK_MIX_KEY in m.content.config_records]
        if not contents:
            return None, None
        reports = [read_report(c) for c in contents]
        for report, content in zip(reports, contents, strict=True):
            self.client_models[report.client_id] = {
                k: a.numpy().copy() for k, a in content["arrays"].items()
            }
            self.task_mix[report.client_id] = read_task_mix(content[TASK_MIX_KEY])
        self.ledger = [ledger_row(r, 1.0 / len(self.client_models)) for r in reports]
        return None, self.train_metrics_aggr_fn(contents, self.weighted_by_key)

    def evaluate_clients(
        self, evaluate: Callable[[dict[str, np.ndarray]], dict[str, Any]]
    ) -> dict[str, Any]:
        return evaluate_client_models(self.client_models, self.task_mix, evaluate)

    def state_dict(self) -> dict[str, Any]:
        """Every known client's latest adapter and task mix: evaluation covers clients not sampled
        lately."""
        return {
            "clients": {
                cid: {"adapter": self.client_models[cid], "task-mix": self.task_mix[cid]}
                for cid in sorted(self.client_models)
            }
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        clients = state.get("clients", {})
        self.client_models = {
            cid: {k: np.asarray(v) for k, v in c["adapter"].items()} for cid, c in clients.items()
        }
        self.task_mix = {
            cid: {t: int(n) for t, n in c["task-mix"].items()} for cid, c in clients.items()
        }
