"""``privacy.dp``: Flower's central-DP wrappers around a registry strategy.

- ``server-fixed``: the server clips each received update θ_k − θ to ``clipping_norm``
  (Flower's ``DifferentialPrivacyServerSideFixedClipping``), aggregates, and adds Gaussian
  noise of standard deviation ``noise_multiplier · clipping_norm / n`` to the new adapter.
- ``client-fixed``: each client clips its own update before it leaves the node
  (fgrpo.client.privacy, Flower's ``fixedclipping_mod`` made safe for our app), the server
  adds the same noise (``DifferentialPrivacyClientSideFixedClipping``).

``n`` is the number of clients sampled per round. The noise is calibrated to a uniform
average (each client moves it by at most C/n); a strategy that weights clients unequally
(FedAvg by examples, FGRPO by signal) lets one client move it by up to w_k · C. What DP
does not cover is in the README ("Privacy options").
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flwr.app import ArrayRecord, Message, MetricRecord
from flwr.serverapp.strategy import (
    DifferentialPrivacyClientSideFixedClipping,
    DifferentialPrivacyServerSideFixedClipping,
    Strategy,
)

from fgrpo.core.config import Config
from fgrpo.core.errors import ConfigError
from fgrpo.models.clipping import clip_update


class _Delegating:
    """Reach the wrapped strategy's own attributes (``ledger``, ``state_dict``...) through the
    wrapper."""

    strategy: Strategy

    def __getattr__(self, name: str) -> Any:
        if name == "strategy":  # not set yet: Flower's __init__ is still running
            raise AttributeError(name)
        return getattr(self.strategy, name)


class ServerSideDP(_Delegating, DifferentialPrivacyServerSideFixedClipping):
    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Flower's clip-aggregate-noise, with a clip that lets an unchanged adapter pass (Flower's
        divides by its zero norm). Error replies never get here (federation.screen_replies)."""
        replies = list(replies)
        for reply in replies:
            for key, record in reply.content.array_records.items():
                reply.content[key] = clip_update(record, self.current_arrays, self.clipping_norm)
        aggregated, metrics = self.strategy.aggregate_train(server_round, replies)
        if aggregated is not None:
            aggregated = self._add_noise_to_aggregated_arrays(aggregated)
        return aggregated, metrics


class ClientSideDP(_Delegating, DifferentialPrivacyClientSideFixedClipping):
    pass


def check_privacy(cfg: Config) -> None:
    """Refuse the settings the wrappers cannot serve, naming the key (which strategies they can
    wrap at all: the registry's ``dp_wrappable``)."""
    if cfg.privacy.dp == "client-fixed" and cfg.model.transport_dtype != "fp32":
        raise ConfigError(
            "privacy.dp",
            "client-fixed clips the adapter the client sends: set model.transport_dtype=fp32",
        )


def sampled_clients(cfg: Config) -> int:
    """Clients per round, as Flower's sampling picks them from ``num_clients`` nodes."""
    f = cfg.federation
    return max(f.min_clients, int(f.num_clients * f.fraction_train))


def with_privacy(strategy: Strategy, cfg: Config) -> Strategy:
    p = cfg.privacy
    if p.dp == "none":
        return strategy
    wrapper = ServerSideDP if p.dp == "server-fixed" else ClientSideDP
    return wrapper(strategy, p.noise_multiplier, p.clipping_norm, sampled_clients(cfg))
