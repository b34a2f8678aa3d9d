"""FGRPO: clients weighted by relative performance gain against their own per-task baselines.

The wire protocol with fgrpo.client.signal: the server asks for a signal with
``SIGNAL_REQUEST_KEY`` in the round's ConfigRecord; a client replies, in a ConfigRecord
``SIGNALS_RECORD_KEY``, per task label ``signal/<task>`` (p_{k,τ}), ``rollouts/<task>``
(n_{k,τ}) and, for the delta gain, ``signal-before/<task>`` — or, when it keeps its own
baselines (``strategy.baseline_at = "client"``), only ``gain`` (g_k).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from logging import INFO
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAdam
from flwr.supercore import log

from fgrpo.core.fgrpo_rule import (
    FgrpoParams,
    TaskHistory,
    TaskSignal,
    client_gain,
    fgrpo_weights,
    update_histories,
)
from fgrpo.core.protocol import (
    GAIN_KEY,
    SIGNAL_REQUEST_KEY,
    SIGNALS_RECORD_KEY,
    task_metrics,
    task_signals,
)
from fgrpo.server.strategies.server_state import FedOptMoments
from fgrpo.server.strategies.weighted import ClientReport, ClientWeightedFedAvg, ledger_row

__all__ = ["SIGNALS_RECORD_KEY", "Fgrpo", "FgrpoAdam", "FgrpoSetup", "task_metrics"]

SIGNALS = ("train-reward", "probe")
BASELINE_SITES = ("server", "client")


@dataclasses.dataclass(frozen=True)
class FgrpoSetup:
    """What an FGRPO strategy needs besides Flower's sampling settings."""

    params: FgrpoParams = FgrpoParams()
    signal: str = "probe"
    baseline_at: str = "server"
    task_ranges: dict[str, tuple[float, float]] = dataclasses.field(default_factory=dict)


class Fgrpo(ClientWeightedFedAvg):
    """Flower strategy implementing the FGRPO rule; baselines are kept per (client id, task)."""

    def __init__(self, *, setup: FgrpoSetup = FgrpoSetup(), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.setup_fgrpo(setup)

    def setup_fgrpo(self, setup: FgrpoSetup) -> None:
        if setup.signal not in SIGNALS:
            raise ValueError(f"unknown FGRPO signal {setup.signal!r}")
        if setup.baseline_at not in BASELINE_SITES:
            raise ValueError(f"unknown FGRPO baseline site {setup.baseline_at!r}")
        self.params, self.signal, self.baseline_at = setup.params, setup.signal, setup.baseline_at
        self.task_ranges = dict(setup.task_ranges)
        self.history: dict[str, dict[str, TaskHistory]] = {}  # client id -> task -> history

    def summary(self) -> None:
        log(
            INFO,
            "\t├──> FGRPO: signal=%s baseline_at=%s %s server_lr=%s",
            self.signal,
            self.baseline_at,
            self.params,
            self.server_lr,
        )
        super().summary()

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        config[SIGNAL_REQUEST_KEY] = self.signal
        return super().configure_train(server_round, arrays, config, grid)

    def check_reply(self, content: RecordDict, report: ClientReport) -> None:
        """Screening (fgrpo.server.screening): a ValueError if this reply's signal cannot be
        weighted."""
        del content
        if self.baseline_at == "client":
            self.reported_gain(report)
        else:
            self.reported_signals(report)

    def reported_gain(self, report: ClientReport) -> float:
        """g_k as the client computed it (strategy.baseline_at = client), clipped to ±g_max."""
        g = report.signals.get(GAIN_KEY, float("nan"))
        if not np.isfinite(g):
            raise ValueError(
                f"client {report.client_id} sent no finite '{GAIN_KEY}' (strategy.baseline_at=client)"
            )
        return float(np.clip(g, -self.params.g_max, self.params.g_max))

    def reported_signals(self, report: ClientReport) -> dict[str, TaskSignal]:
        signals = task_signals(report.signals, self.task_ranges, report.client_id)
        missing = [t for t, s in signals.items() if not s.width > 0]
        if missing and self.params.gain_mode in ("range", "zscore", "delta"):
            raise ValueError(
                f"no declared reward range for task {missing[0]!r} (gain {self.params.gain_mode!r})"
            )
        return signals

    def client_row(self, report: ClientReport) -> tuple[float, dict[str, Any]]:
        """g_k for one reply and the ledger fields that explain it; updates the server's history."""
        if self.baseline_at == "client":
            return self.reported_gain(report), {"tasks": None}
        signals = self.reported_signals(report)
        past = self.history.get(report.client_id, {})
        g, per_task = client_gain(signals, past, self.params)
        self.history[report.client_id] = update_histories(past, signals, self.params)
        tasks = {
            task: {
                "signal": signals[task].p,
                "rollouts": signals[task].n,
                "baseline": b,
                "gain": gain,
                **({} if signals[task].p_before is None else {"before": signals[task].p_before}),
            }
            for task, (gain, b) in per_task.items()
        }
        return g, {"tasks": tasks}

    def compute_weights(
        self, server_round: int, reports: list[ClientReport]
    ) -> tuple[np.ndarray, list[dict[str, Any]]]:
        gains, details = zip(*(self.client_row(r) for r in reports), strict=False)
        weights = fgrpo_weights([r.num_examples for r in reports], list(gains), self.params)
        rows = [
            ledger_row(r, w, gain=g, **d)
            for r, w, g, d in zip(reports, weights, gains, details, strict=False)
        ]
        return weights, rows

    def state_dict(self) -> dict[str, Any]:
        return {
            "history": {
                cid: {task: dataclasses.asdict(h) for task, h in tasks.items()}
                for cid, tasks in self.history.items()
            }
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.history = {
            cid: {task: TaskHistory(**h) for task, h in tasks.items()}
            for cid, tasks in state.get("history", {}).items()
        }


class FgrpoAdam(FedOptMoments, FedAdam, Fgrpo):
    """FGRPO weighting, then Flower's FedAdam server step on the FGRPO-weighted average.

    By the MRO (FgrpoAdam, FedOptMoments, FedAdam, FedOpt, Fgrpo, ClientWeightedFedAvg, FedAvg),
    FedAdam.aggregate_train's ``super()`` reaches ClientWeightedFedAvg.aggregate_train,
    which averages with the FGRPO weights (server_lr stays 1, so it returns the plain
    weighted average); FedAdam then turns average - θ into its adaptive step.
    """

    def __init__(
        self,
        *,
        setup: FgrpoSetup = FgrpoSetup(),
        eta: float = 1e-3,
        eta_l: float = 1e-1,
        beta_1: float = 0.9,
        beta_2: float = 0.99,
        tau: float = 1e-6,
        **sampling: Any,
    ) -> None:
        # FedOpt's super().__init__ call reaches Fgrpo.__init__ without the FGRPO setup,
        # so it is applied once the chain has run.
        FedAdam.__init__(
            self, eta=eta, eta_l=eta_l, beta_1=beta_1, beta_2=beta_2, tau=tau, **sampling
        )
        self.setup_fgrpo(setup)
