"""``strategy.server_lr``: the server step θ ← θ + η · (aggregate − θ), one implementation for every
strategy.

The aggregate is whatever the strategy combines the clients' adapters into (FedAvg's or FGRPO's
weighted average, a median, Krum's pick); η = 1 keeps it as it is. Strategies with a server
optimizer of their own (FedAdam & co., FedAvgM's momentum) and the references that never aggregate
refuse the key instead (the registry's ``without_server_lr``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid


class ServerLearningRate:
    """Mixin: remembers the adapter θ sent this round; ``server_step`` moves θ towards an
    aggregate."""

    def __init__(self, *, server_lr: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.server_lr = server_lr
        self.global_arrays: dict[str, np.ndarray] | None = None

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        self.global_arrays = {k: a.numpy() for k, a in arrays.items()}
        return super().configure_train(server_round, arrays, config, grid)  # type: ignore[misc]

    def server_step(self, aggregate: ArrayRecord | None) -> ArrayRecord | None:
        """θ + η (aggregate − θ), in float64, kept in the aggregate's dtype; the aggregate itself at
        η = 1."""
        if aggregate is None or self.server_lr == 1.0 or self.global_arrays is None:
            return aggregate
        theta = self.global_arrays
        stepped = {}
        for k, a in aggregate.items():
            new = a.numpy()
            moved = theta[k].astype(np.float64) + self.server_lr * (
                new.astype(np.float64) - theta[k]
            )
            stepped[k] = Array(moved.astype(new.dtype))
        return ArrayRecord(stepped)


class SteppedFlowerAggregate(ServerLearningRate):
    """For Flower's strategies: their own aggregate, then the server step."""

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        aggregate, metrics = super().aggregate_train(server_round, replies)  # type: ignore[misc]
        return self.server_step(aggregate), metrics
