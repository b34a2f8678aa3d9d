"""The server's side of ``model.lora_aggregation = "exact"``: the base weights' residual R.

After the strategy aggregates, R grows by what the averaged factors miss of the clients' weighted
mean, s·(Σ w_k B_k A_k − B̄Ā) per adapted layer (fgrpo.models.lora_modes.residual_step, with the
weights w_k each client actually had: the strategy's ledger). R is applied to the server's own
model (its evaluations score W0 + R + s·BA), sent to every client with the round's adapter, and
checkpointed with the strategy's state, so a resumed run continues it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from flwr.app import Message

from fgrpo.core.config import Config
from fgrpo.core.protocol import BASE_RESIDUAL_KEY
from fgrpo.models.lora_modes import accumulate, residual_step, set_base_residual
from fgrpo.models.transport import from_arrayrecord, to_arrayrecord
from fgrpo.server.screening import claimed_client_id

STATE_KEY = "lora-residual"  # in the checkpointed strategy state


class BaseResidual:
    def __init__(self, cfg: Config, model: Any) -> None:
        self.on = cfg.model.lora_aggregation == "exact"
        self.scale = cfg.model.lora_alpha / cfg.model.lora_r  # PEFT's LoRA scaling
        self.server_lr = cfg.strategy.server_lr
        self.model = model
        self.total: dict[str, np.ndarray] = {}

    def restore(self, strategy_state: dict[str, Any]) -> dict[str, Any]:
        """A checkpointed strategy state without R, which this keeps (and applies)."""
        rest = dict(strategy_state)
        self.total = {k: np.asarray(v) for k, v in (rest.pop(STATE_KEY, None) or {}).items()}
        set_base_residual(self.model, self.total)
        return rest

    def checkpointed(self, strategy_state: dict[str, Any]) -> dict[str, Any]:
        return {**strategy_state, STATE_KEY: self.total} if self.total else strategy_state

    def attach(self, messages: list[Message]) -> None:
        """Every client's base must equal the server's: R travels with the round's adapter."""
        if self.total:
            for message in messages:
                message.content[BASE_RESIDUAL_KEY] = to_arrayrecord(self.total)

    def after_round(
        self,
        previous: dict[str, np.ndarray],
        new: dict[str, np.ndarray],
        replies: list[Message],
        ledger: list[dict[str, Any]],
    ) -> None:
        if not self.on or new is previous or not ledger:
            return
        weight = {row["client-id"]: row["weight"] for row in ledger}
        used = [r for r in replies if claimed_client_id(r.content) in weight]
        clients = [from_arrayrecord(r.content["arrays"]) for r in used]
        weights = [weight[claimed_client_id(r.content)] for r in used]
        step = residual_step(previous, new, clients, weights, self.server_lr, self.scale)
        self.total = accumulate(self.total, step)
        set_base_residual(self.model, self.total)
