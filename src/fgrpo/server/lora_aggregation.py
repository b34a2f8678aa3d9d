"""The server's side of ``model.lora_aggregation``: exact's base residual R, fedsa's personal B.

exact:

After the strategy aggregates, R grows by what the averaged factors miss of the clients' weighted
mean, s·(Σ w_k B_k A_k − B̄Ā) per adapted layer (fgrpo.models.lora_modes.residual_step, with the
weights w_k each client actually had: the strategy's ledger). R is applied to the server's own
model (its evaluations score W0 + R + s·BA), sent to every client with the round's adapter, and
checkpointed with the strategy's state, so a resumed run continues it.

fedsa: the strategy sees the A factors alone (sent, screened, aggregated); B stays as initialised
in the global adapter. On evaluation rounds the clients also send their own B_k, which this keeps
(checkpointed) to evaluate each client's model Ā + B_k, as local-only evaluates its clients.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from flwr.app import Message

from fgrpo.core.config import Config
from fgrpo.core.protocol import (
    BASE_RESIDUAL_KEY,
    PERSONAL_B_KEY,
    SEND_PERSONAL_KEY,
    TASK_MIX_KEY,
    read_task_mix,
)
from fgrpo.models.lora_modes import (
    accumulate,
    personal_part,
    residual_step,
    set_base_residual,
    shared_part,
)
from fgrpo.models.transport import from_arrayrecord, to_arrayrecord
from fgrpo.server.screening import claimed_client_id
from fgrpo.server.strategies.local_only import evaluate_client_models

STATE_KEY = "lora-residual"  # in the checkpointed strategy state
PERSONAL_STATE_KEY = "lora-personal"  # fedsa: {client: {"b": .., "task-mix": ..}}


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


class PersonalFactors:
    """fedsa's server side: what of the adapter the strategy sees, and each client's latest B_k
    (with its task mix) for evaluating its own model; inert in every other mode."""

    def __init__(self, cfg: Config) -> None:
        self.mode = cfg.model.lora_aggregation
        self.on = self.mode == "fedsa"
        self.b: dict[str, dict[str, np.ndarray]] = {}  # the latest B each client sent
        self.task_mix: dict[str, dict[str, int]] = {}

    def shared(self, state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return shared_part(state, self.mode)

    def templates(self, state: dict[str, np.ndarray]) -> dict[str, np.ndarray] | None:
        """What a reply's personal-b must match, tensor by tensor (None: no such record)."""
        return personal_part(state) if self.on else None

    def ask(self, config: Any, evaluating: bool) -> None:
        if self.on and evaluating:
            config[SEND_PERSONAL_KEY] = True

    def collect(self, replies: list[Message]) -> None:
        """Keep each reply's B_k and remove it: strategies aggregate one ArrayRecord per reply."""
        for reply in replies:
            content = reply.content
            if self.on and PERSONAL_B_KEY in content.array_records:
                cid = str(claimed_client_id(content))
                self.b[cid] = from_arrayrecord(content[PERSONAL_B_KEY])
                self.task_mix[cid] = read_task_mix(content[TASK_MIX_KEY])  # screened
                del content[PERSONAL_B_KEY]

    def evaluate(self, state: dict[str, np.ndarray], evaluate: Any) -> dict[str, Any]:
        models = {cid: {**state, **b} for cid, b in self.b.items()}
        return evaluate_client_models(models, self.task_mix, evaluate)

    def restore(self, strategy_state: dict[str, Any]) -> dict[str, Any]:
        rest = dict(strategy_state)
        clients = rest.pop(PERSONAL_STATE_KEY, None) or {}
        self.b = {c: {k: np.asarray(v) for k, v in s["b"].items()} for c, s in clients.items()}
        self.task_mix = {
            c: {t: int(n) for t, n in s["task-mix"].items()} for c, s in clients.items()
        }
        return rest

    def checkpointed(self, strategy_state: dict[str, Any]) -> dict[str, Any]:
        if not self.b:
            return strategy_state
        clients = {c: {"b": self.b[c], "task-mix": self.task_mix[c]} for c in sorted(self.b)}
        return {**strategy_state, PERSONAL_STATE_KEY: clients}
