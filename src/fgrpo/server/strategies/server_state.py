"""The server state Flower's stateful strategies keep in attributes of their own, for checkpoints.

Mixins placed before the strategy's own state_dict in the MRO; they add to what it returns.
Arrays stay numpy arrays (fgrpo.runtime.checkpoint stores them exactly).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord


class FedOptMoments:
    """Flower FedOpt (FedAdam, FedYogi, FedAdagrad, fgrpo-adam): the moments m_t and v_t.

    FedOpt's ``current_arrays`` is reset from the global adapter every configure_train.
    """

    m_t: dict[str, np.ndarray] | None
    v_t: dict[str, np.ndarray] | None

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "fedopt": {"m_t": self.m_t, "v_t": self.v_t}}  # type: ignore[misc]

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)  # type: ignore[misc]
        moments = state.get("fedopt", {})
        self.m_t, self.v_t = moments.get("m_t"), moments.get("v_t")


class FedAvgMMomentum:
    """Flower FedAvgM: the momentum vector and the arrays it last stepped from."""

    momentum_vector: list[np.ndarray] | None
    current_arrays: ArrayRecord | None

    def state_dict(self) -> dict[str, Any]:
        current = (
            None
            if self.current_arrays is None
            else {k: a.numpy() for k, a in self.current_arrays.items()}
        )
        return {
            **super().state_dict(),
            "fedavgm": {"momentum": self.momentum_vector, "current": current},
        }  # type: ignore[misc]

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)  # type: ignore[misc]
        saved = state.get("fedavgm", {})
        momentum, current = saved.get("momentum"), saved.get("current")
        self.momentum_vector = None if momentum is None else [np.asarray(m) for m in momentum]
        self.current_arrays = (
            None
            if current is None
            else ArrayRecord({k: Array(np.asarray(v)) for k, v in current.items()})
        )
