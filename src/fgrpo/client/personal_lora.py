"""A client's side of ``model.lora_aggregation = "fedsa"`` (FedSA-LoRA): A is shared, B stays home.

The server sends the global A only; the client trains from Ā and its own B (as initialised, i.e.
zero, before its first round), keeps the new B in its ``context.state`` (saved and restored with the
rest of its state) and replies with its A. On evaluation rounds the server asks for B as well
(``send-personal-b``): it evaluates each client's own model Ā + B_k and never aggregates nor
forwards a B.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
from datasets import Dataset
from flwr.app import ArrayRecord, ConfigRecord, RecordDict

from fgrpo.core.protocol import PERSONAL_B_KEY, SEND_PERSONAL_KEY, TASK_MIX_KEY
from fgrpo.models.lora_modes import personal_part, shared_part
from fgrpo.models.transport import from_arrayrecord, to_arrayrecord

STATE_KEY = "personal-lora-b"  # in context.state


def start_state(
    mode: str, received: dict[str, np.ndarray], state: RecordDict, template: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """The adapter local training starts from: as received, or (fedsa) Ā and this client's B.
    ``template``: the model's adapter, for B's shapes before a client's first round."""
    if mode != "fedsa":
        return received
    if STATE_KEY in state.array_records:
        own = from_arrayrecord(state[STATE_KEY])
    else:  # PEFT initialises B to zero: the global adapter's B before any training
        own = {k: np.zeros_like(v) for k, v in personal_part(template).items()}
    return {**received, **own}


def finish_round(
    mode: str,
    trained: dict[str, np.ndarray],
    state: RecordDict,
    config: ConfigRecord,
    data: Dataset,
) -> tuple[dict[str, np.ndarray], dict[str, ArrayRecord | ConfigRecord]]:
    """(the adapter to reply with, records to add to the reply); fedsa keeps B in ``state``."""
    if mode != "fedsa":
        return trained, {}
    own = personal_part(trained)
    state[STATE_KEY] = to_arrayrecord(own)
    extra: dict[str, ArrayRecord | ConfigRecord] = {}
    if config.get(SEND_PERSONAL_KEY, False):
        extra[PERSONAL_B_KEY] = to_arrayrecord(own)
        extra[TASK_MIX_KEY] = ConfigRecord(dict(Counter(data["task"])))
    return shared_part(trained, mode), extra
