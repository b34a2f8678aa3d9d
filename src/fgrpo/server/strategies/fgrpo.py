"""FGRPO: clients weighted by relative performance gain against their own baseline."""

from __future__ import annotations

import dataclasses
from logging import INFO
from typing import Any

import numpy as np
from flwr.serverapp.strategy import FedAdam
from flwr.supercore import log

from .fgrpo_rule import ClientHistory, FgrpoParams, fgrpo_weights, relative_gain, update_history
from .weighted import ClientReport, ClientWeightedFedAvg, ledger_row

SIGNAL_KEYS = {"train-reward": "reward", "probe": "probe-reward"}


class Fgrpo(ClientWeightedFedAvg):
    """Flower strategy implementing the FGRPO rule; baselines are kept per stable client id."""

    def __init__(self, *, params: FgrpoParams = FgrpoParams(), signal: str = "train-reward", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if signal not in SIGNAL_KEYS:
            raise ValueError(f"unknown FGRPO signal {signal!r}")
        self.params = params
        self.signal = signal
        self.history: dict[str, ClientHistory] = {}

    def summary(self) -> None:
        log(INFO, "\t├──> FGRPO: signal=%s %s server_lr=%s", self.signal, self.params, self.server_lr)
        super().summary()

    def performance(self, report: ClientReport) -> float:
        key = SIGNAL_KEYS[self.signal]
        if key not in report.metrics:
            raise ValueError(f"client {report.client_id} sent no '{key}' metric for FGRPO signal {self.signal!r}")
        value = report.metrics[key]
        if not np.isfinite(value):
            raise ValueError(f"client {report.client_id} sent a non-finite '{key}': {value}")
        return value

    def compute_weights(self, server_round: int, reports: list[ClientReport]) -> tuple[np.ndarray, list[dict[str, Any]]]:
        signals = [self.performance(r) for r in reports]
        gains, baselines = zip(*(relative_gain(p, self.history.get(r.client_id), self.params) for r, p in zip(reports, signals)))
        weights = fgrpo_weights([r.num_examples for r in reports], list(gains), self.params)
        for report, p in zip(reports, signals):
            self.history[report.client_id] = update_history(self.history.get(report.client_id), p, self.params)
        rows = [
            ledger_row(r, w, signal=p, baseline=b, gain=g)
            for r, w, p, b, g in zip(reports, weights, signals, baselines, gains)
        ]
        return weights, rows

    def state_dict(self) -> dict[str, Any]:
        return {"history": {cid: dataclasses.asdict(h) for cid, h in self.history.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.history = {cid: ClientHistory(**h) for cid, h in state.get("history", {}).items()}


class FgrpoAdam(FedAdam, Fgrpo):
    """FGRPO weighting, then Flower's FedAdam server step on the FGRPO-weighted average.

    By the MRO (FgrpoAdam, FedAdam, FedOpt, Fgrpo, ClientWeightedFedAvg, FedAvg),
    FedAdam.aggregate_train's ``super()`` reaches ClientWeightedFedAvg.aggregate_train,
    which averages with the FGRPO weights (server_lr stays 1, so it returns the plain
    weighted average); FedAdam then turns average - θ into its adaptive step.
    """

    def __init__(
        self,
        *,
        params: FgrpoParams = FgrpoParams(),
        signal: str = "train-reward",
        eta: float = 1e-3,
        eta_l: float = 1e-1,
        beta_1: float = 0.9,
        beta_2: float = 0.99,
        tau: float = 1e-6,
        **sampling: Any,
    ) -> None:
        # FedOpt's super().__init__ call reaches Fgrpo.__init__ without FGRPO arguments,
        # so they are set once the chain has run.
        FedAdam.__init__(self, eta=eta, eta_l=eta_l, beta_1=beta_1, beta_2=beta_2, tau=tau, **sampling)
        if signal not in SIGNAL_KEYS:
            raise ValueError(f"unknown FGRPO signal {signal!r}")
        self.params = params
        self.signal = signal
