"""``federation.optimizer_state = "keep"``: a client's AdamW moments and step counts survive the
rounds it takes part in.

Every round builds a new TRL trainer and with it a fresh AdamW, so with few local steps each round's
first, bias-corrected step is about lr·sign(g) per coordinate, while the centralized reference
keeps one AdamW over all its steps. Keeping the state makes the client's optimiser the same as one
trainer run over all its rounds. The state lives in the client's own ``context.state`` (saved and
restored with it, fgrpo.client.persistence): the moments never leave the client. They are keyed by
parameter name, so a round that trains another set of factors (rolora) picks up each one's own.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from flwr.app import Array, ArrayRecord, RecordDict
from peft import PeftModel
from transformers import TrainerCallback

STATE_KEY = "optimizer-state"  # in context.state


def named_slots(optimizer: Any, model: PeftModel) -> dict[int, str]:
    """The optimizer's parameter index (as its state_dict numbers them) -> parameter name."""
    names = {id(p): name for name, p in model.named_parameters()}
    params = [p for group in optimizer.param_groups for p in group["params"]]
    return {i: names[id(p)] for i, p in enumerate(params)}


class KeptOptimizer(TrainerCallback):
    def __init__(self, state: RecordDict, model: PeftModel) -> None:
        self.state, self.model = state, model

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Load the saved moments into the round's new optimizer (its hyperparameters, the round's
        learning rate among them, stay this round's)."""
        saved = self.state.array_records.get(STATE_KEY)
        if saved is None:
            return
        optimizer = kwargs["optimizer"]
        current = optimizer.state_dict()
        by_name: dict[str, dict[str, torch.Tensor]] = {}
        for key, array in saved.items():
            name, field = key.rsplit("/", 1)
            by_name.setdefault(name, {})[field] = torch.from_numpy(array.numpy().copy())
        slots = named_slots(optimizer, self.model)
        current["state"] = {i: by_name[name] for i, name in slots.items() if name in by_name}
        optimizer.load_state_dict(current)  # torch moves each tensor to its parameter's device

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        optimizer = kwargs["optimizer"]
        slots = named_slots(optimizer, self.model)
        kept = ArrayRecord(
            {
                f"{slots[i]}/{field}": Array(np.asarray(t.detach().cpu().numpy()))
                for i, fields in optimizer.state_dict()["state"].items()
                for field, t in fields.items()
            }
        )
        saved = self.state.array_records.get(STATE_KEY)
        if saved is not None:  # a factor this round did not train keeps its moments (rolora)
            trained = {key.rsplit("/", 1)[0] for key in kept}
            for key, array in saved.items():
                if key.rsplit("/", 1)[0] not in trained:
                    kept[key] = array
        self.state[STATE_KEY] = kept
