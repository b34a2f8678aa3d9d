"""Client-side halves of the federated algorithms: FedProx, SCAFFOLD, local-only.

What the client does is read off the server's message, not off the strategy name:

- ``proximal-mu`` in the ConfigRecord (Flower's FedProx sends it): train with
  ``FedProxGRPOTrainer``, whose loss adds mu/2 * ||theta - theta_global||^2 over the
  adapter parameters;
- an ArrayRecord ``scaffold-c`` (the server control variate): correct every local
  optimizer step by (c - c_i) and reply with delta c_i (option II, see
  fgrpo.client.scaffold); c_i persists in ``context.state``;
- ``keep-local-model`` in the ConfigRecord (local-only): start from the adapter kept in
  ``context.state`` (the global one on the first round), keep the result there, and
  reply with the partition's task counts (the server weighs the client's own task mix).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from datasets import Dataset
from flwr.app import ArrayRecord, ConfigRecord, Context, Message
from peft import PeftModel, get_peft_model_state_dict
from trl import GRPOTrainer

from fgrpo.client.grpo import placed_like
from fgrpo.client.scaffold import correction_norm, plan_scaffold
from fgrpo.core.protocol import KEEP_LOCAL_KEY, PROXIMAL_MU_KEY, SERVER_VARIATE_KEY, TASK_MIX_KEY
from fgrpo.models.transport import adapter_state, from_arrayrecord, to_arrayrecord

LOCAL_ADAPTER_KEY = "local-adapter"  # in context.state
CLIENT_RECORD_KEY = "fgrpo-client"  # in context.state: round counter of the persistent state
Record = ArrayRecord | ConfigRecord  # what a round adds to the reply besides adapter and metrics


def adapter_parameters(model: PeftModel) -> dict[str, torch.nn.Parameter]:
    """The adapter tensors, keyed like ``adapter_state`` (PEFT state-dict names); a factor that
    model.lora_aggregation freezes this round (ffa, rolora) is among them, untrained."""
    by_storage = {p.data_ptr(): p for p in model.parameters()}
    params = {k: by_storage.get(v.data_ptr()) for k, v in get_peft_model_state_dict(model).items()}
    missing = [k for k, p in params.items() if p is None]
    if missing:
        raise RuntimeError(f"adapter tensors without a trainable parameter: {missing[:3]}")
    return params  # type: ignore[return-value]


# --- FedProx -------------------------------------------------------------------


def proximal_term(
    params: dict[str, torch.Tensor], anchor: dict[str, torch.Tensor], mu: float
) -> torch.Tensor:
    """mu/2 * sum_k ||theta_k - theta_global_k||^2."""
    total = sum(((params[k] - anchor[k]) ** 2).sum() for k in params)
    return 0.5 * mu * total  # type: ignore[return-value]


class ProximalTerm:
    """FedProx's term on the live adapter parameters (see adapter_parameters). theta_global is
    copied when the round is planned; TRL moves the model to its device only afterwards, inside
    the trainer, so the copy follows the parameters when the term is first computed."""

    def __init__(self, params: dict[str, torch.nn.Parameter], mu: float) -> None:
        self.params, self.mu = params, float(mu)
        self.anchor = {k: p.detach().clone() for k, p in params.items()}  # theta_global

    def __call__(self) -> torch.Tensor:
        self.anchor = placed_like(self.anchor, self.params)
        return proximal_term(self.params, self.anchor, self.mu)


class FedProxGRPOTrainer(GRPOTrainer):
    """TRL's GRPOTrainer with FedProx's proximal term added to the loss."""

    def __init__(self, *args: Any, proximal: ProximalTerm, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.proximal = proximal

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):  # noqa: ANN001
        loss = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        if self.proximal.mu == 0.0:
            return loss
        # GRPO's loss is already scaled for gradient accumulation (loss_is_scaled_for_ga), so
        # the term is split the same way and counts once per optimizer step.
        return loss + self.proximal() / self.current_gradient_accumulation_steps


# --- what one round of local training looks like -------------------------------


@dataclass
class LocalRound:
    """The trainer to use and what to add to the reply afterwards."""

    trainer_cls: type[GRPOTrainer] = GRPOTrainer
    trainer_kwargs: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)  # added to the reply's MetricRecord
    finish: Callable[[PeftModel], dict[str, Record]] = lambda model: {}


def start_adapter(msg: Message, context: Context) -> dict[str, np.ndarray]:
    """The adapter local training starts from: the global one, or local-only's own."""
    config = msg.content["config"]
    if config.get(KEEP_LOCAL_KEY, False) and LOCAL_ADAPTER_KEY in context.state.array_records:
        return from_arrayrecord(context.state[LOCAL_ADAPTER_KEY])
    return from_arrayrecord(msg.content["arrays"])


def plan_round(
    msg: Message, context: Context, model: PeftModel, client_id: str, dataset: Dataset
) -> LocalRound:
    """Choose trainer and hooks from the message; call after the start adapter is loaded."""
    config = msg.content["config"]
    plan = LocalRound()
    finishers: list[Callable[[PeftModel], dict[str, Record]]] = []
    if PROXIMAL_MU_KEY in config:
        plan.trainer_cls = FedProxGRPOTrainer
        plan.trainer_kwargs["proximal"] = ProximalTerm(
            adapter_parameters(model), float(config[PROXIMAL_MU_KEY])
        )
    stateful = SERVER_VARIATE_KEY in msg.content.array_records or bool(
        config.get(KEEP_LOCAL_KEY, False)
    )
    if stateful:  # how many rounds this client's own state has lived through (it must persist)
        record = context.state.config_records.get(CLIENT_RECORD_KEY, ConfigRecord({"rounds": 0}))
        rounds = int(record["rounds"]) + 1
        context.state[CLIENT_RECORD_KEY] = ConfigRecord({"rounds": rounds})
        plan.metrics["client-state-rounds"] = rounds
    if SERVER_VARIATE_KEY in msg.content.array_records:
        callback, finish_scaffold = plan_scaffold(
            msg, context, model, client_id, adapter_parameters(model)
        )
        plan.trainer_kwargs.setdefault("callbacks", []).append(callback)
        plan.metrics["scaffold-correction-norm"] = correction_norm(callback)
        finishers.append(finish_scaffold)
    if config.get(KEEP_LOCAL_KEY, False):
        mix = ConfigRecord({task: n for task, n in Counter(dataset["task"]).items()})

        def keep(model: PeftModel) -> dict[str, Record]:
            context.state[LOCAL_ADAPTER_KEY] = to_arrayrecord(adapter_state(model))
            return {TASK_MIX_KEY: mix}

        finishers.append(keep)

    def finish(model: PeftModel) -> dict[str, Record]:
        extra: dict[str, Record] = {}
        for finisher in finishers:
            extra.update(finisher(model))
        return extra

    plan.finish = finish
    return plan
