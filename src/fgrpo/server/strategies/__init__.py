"""Aggregation strategies by name: Flower's where Flower has one, ours where it does not."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flwr.serverapp.strategy import FedAvg, Strategy

from ...config import Config
from .fgrpo import Fgrpo
from .fgrpo_rule import FgrpoParams


def _sampling(cfg: Config) -> dict[str, Any]:
    return {
        "fraction_train": cfg.federation.fraction_train,
        "fraction_evaluate": 0.0,  # evaluation is server-side on held-out prompts
        "min_train_nodes": cfg.federation.min_clients,
        "min_evaluate_nodes": 0,
        "min_available_nodes": cfg.federation.min_clients,
    }


def fgrpo_params(cfg: Config) -> FgrpoParams:
    s = cfg.strategy
    return FgrpoParams(gain_mode=s.gain, beta=s.beta, tau=s.tau, gamma=s.gamma, g_max=s.g_max, floor=s.floor, eps=s.eps)


def _fgrpo(cfg: Config) -> Strategy:
    return Fgrpo(params=fgrpo_params(cfg), signal=cfg.strategy.signal, server_lr=cfg.strategy.server_lr, **_sampling(cfg))


STRATEGIES: dict[str, tuple[str, Callable[[Config], Strategy]]] = {
    "fedavg": ("Flower's FedAvg: weights proportional to num-examples", lambda cfg: FedAvg(**_sampling(cfg))),
    "fgrpo": ("FGRPO: weights n^gamma * exp(relative gain / tau) against each client's EMA baseline", _fgrpo),
}


def build_strategy(cfg: Config) -> Strategy:
    try:
        _, factory = STRATEGIES[cfg.strategy.name]
    except KeyError:
        raise ValueError(f"strategy.name: unknown strategy {cfg.strategy.name!r}; known: {', '.join(STRATEGIES)}") from None
    return factory(cfg)
