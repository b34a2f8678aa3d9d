"""SCAFFOLD's client half (option II), correct under whatever optimiser TRL runs.

The correction is applied in parameter space after each optimiser step,
θ ← θ − lr_t · (c − c_i), rather than added to the gradient: AdamW would rescale a
gradient-side correction (and clipping would cut it), so local steps would follow
c − c_i instead of the GRPO gradient. With the correction outside the optimiser,
option II's c_i+ = c_i − c + (x − y_i) / Σ_t lr_t is exactly the lr-weighted mean
of the optimiser's own steps per unit learning rate — the same units as the
correction it feeds back, whatever the optimiser.

A new c_i is committed only once the server has aggregated the reply that carried
its delta, so the server's c stays the mean of the clients' c_i: the client keeps it
pending in ``context.state`` and the next message it receives lists, per client id,
the last round whose reply the server took (``scaffold-accepted``).
"""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message
from peft import PeftModel
from transformers import TrainerCallback

from fgrpo.client.grpo import placed_like
from fgrpo.core.protocol import ACCEPTED_KEY, DELTA_VARIATE_KEY, SERVER_VARIATE_KEY
from fgrpo.models.transport import adapter_state, from_arrayrecord, to_arrayrecord

CLIENT_VARIATE_KEY = "scaffold-c-i"  # in context.state: the committed c_i
PENDING_VARIATE_KEY = "scaffold-c-i-pending"  # in context.state: c_i+ awaiting the server's word
PENDING_ROUND_KEY = "scaffold-pending-round"  # in context.state: the round that produced it


def client_variate_update(
    c_i: dict[str, np.ndarray],
    c: dict[str, np.ndarray],
    x: dict[str, np.ndarray],
    y: dict[str, np.ndarray],
    lr_sum: float,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Option II: c_i+ = c_i - c + (x - y_i) / sum_t lr_t. Returns (c_i+, c_i+ - c_i).

    ``lr_sum`` is the sum of the learning rates of the steps actually taken.
    """
    if lr_sum <= 0:
        raise ValueError(f"SCAFFOLD needs a positive sum of local learning rates, got {lr_sum}")
    new = {k: c_i[k] - c[k] + (x[k] - y[k]) / lr_sum for k in c_i}
    return new, {k: new[k] - c_i[k] for k in c_i}


class ScaffoldCorrection(TrainerCallback):
    """θ ← θ − lr_t · (c − c_i) after every optimiser step; sums the lr_t it applied."""

    def __init__(
        self, params: dict[str, torch.nn.Parameter], correction: dict[str, np.ndarray]
    ) -> None:
        self.params = params
        self.correction = {
            k: torch.from_numpy(np.asarray(v, dtype=np.float32)) for k, v in correction.items()
        }
        self.lr_sum = 0.0
        self.steps = 0

    def on_optimizer_step(self, args, state, control, optimizer=None, **kwargs):  # noqa: ANN001
        # Runs after optimizer.step() and before the scheduler moves on: param_groups hold lr_t.
        lr = float(optimizer.param_groups[0]["lr"])
        # made on the CPU when the round was planned; the trainer has since moved the parameters
        self.correction = placed_like(self.correction, self.params)
        with torch.no_grad():
            for name, param in self.params.items():
                param.sub_(lr * self.correction[name])
        self.lr_sum += lr
        self.steps += 1


def committed_variate(
    context: Context, accepted: dict[str, int], client_id: str, like: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """This client's c_i: commit a pending c_i+ if the server took the reply that carried it, else
    drop it."""
    state = context.state
    if PENDING_VARIATE_KEY in state.array_records:
        pending_round = int(state[PENDING_ROUND_KEY]["round"])
        if accepted.get(client_id) == pending_round:
            state[CLIENT_VARIATE_KEY] = state[PENDING_VARIATE_KEY]
        del state[PENDING_VARIATE_KEY]
        del state[PENDING_ROUND_KEY]
    if CLIENT_VARIATE_KEY in state.array_records:
        return from_arrayrecord(state[CLIENT_VARIATE_KEY])
    return {k: np.zeros_like(v) for k, v in like.items()}


def hold_pending(context: Context, new_c_i: dict[str, np.ndarray], server_round: int) -> None:
    context.state[PENDING_VARIATE_KEY] = to_arrayrecord(new_c_i)
    context.state[PENDING_ROUND_KEY] = ConfigRecord({"round": server_round})


def plan_scaffold(
    msg: Message,
    context: Context,
    model: PeftModel,
    client_id: str,
    params: dict[str, torch.nn.Parameter],
) -> tuple[ScaffoldCorrection, Callable[[PeftModel], dict[str, ArrayRecord]]]:
    """The round's correction callback and the finisher that replies with delta c_i."""
    config = msg.content["config"]
    c = from_arrayrecord(msg.content[SERVER_VARIATE_KEY])
    x = adapter_state(model)  # the global adapter just loaded
    if set(c) != set(x):
        raise ValueError("SCAFFOLD: server control variate keys do not match the adapter")
    c_i = committed_variate(context, json.loads(str(config.get(ACCEPTED_KEY, "{}"))), client_id, x)
    correction = {k: c[k] - c_i[k] for k in c}
    callback = ScaffoldCorrection(params, correction)

    def finish(model: PeftModel) -> dict[str, ArrayRecord]:
        new_c_i, delta = client_variate_update(c_i, c, x, adapter_state(model), callback.lr_sum)
        hold_pending(context, new_c_i, int(config["server-round"]))
        return {DELTA_VARIATE_KEY: to_arrayrecord(delta)}

    return callback, finish


def correction_norm(callback: ScaffoldCorrection) -> float:
    """‖c − c_i‖ of the round (a reply metric: zero in a client's first round, then non-zero)."""
    return float(np.sqrt(sum(float((v.double() ** 2).sum()) for v in callback.correction.values())))
