"""Adapter weights <-> Flower ArrayRecord. Only LoRA tensors travel, never the base model.

bf16 transport halves the bytes on the wire; numpy has no bfloat16, so those
tensors travel as their raw 16-bit patterns with a dtype marker in the key set
and are widened to fp32 on arrival (all aggregation happens in fp32).

A client's reply in a lossy dtype carries its update Δ = θ_k − θ against the adapter
it was sent, never θ_k: bf16 keeps 8 significant bits of what it is given, and a
round's update is orders of magnitude smaller than the adapter itself.
"""

from __future__ import annotations

import numpy as np
import torch
from flwr.app import Array, ArrayRecord
from peft import PeftModel, get_peft_model_state_dict, set_peft_model_state_dict

BF16_SUFFIX = "::bf16"
DELTA_SUFFIX = "::delta"  # the tensor is θ_k − θ_sent; the receiver adds θ_sent back


def adapter_state(model: PeftModel) -> dict[str, np.ndarray]:
    """The adapter's tensors as fp32 numpy arrays, keyed by PEFT's state-dict names."""
    return {
        k: v.detach().to(torch.float32).cpu().numpy().copy()
        for k, v in get_peft_model_state_dict(model).items()
    }


def load_adapter_state(model: PeftModel, state: dict[str, np.ndarray]) -> None:
    expected = set(get_peft_model_state_dict(model))
    if set(state) != expected:
        missing, extra = sorted(expected - set(state)), sorted(set(state) - expected)
        raise ValueError(
            f"adapter keys do not match the model: missing {missing[:3]}, unexpected {extra[:3]}"
        )
    tensors = {k: torch.from_numpy(np.asarray(v, dtype=np.float32)) for k, v in state.items()}
    set_peft_model_state_dict(model, tensors)


def to_arrayrecord(state: dict[str, np.ndarray], dtype: str = "fp32") -> ArrayRecord:
    if dtype == "fp32":
        return ArrayRecord(
            {k: Array(np.ascontiguousarray(v, dtype=np.float32)) for k, v in state.items()}
        )
    if dtype == "bf16":
        record = {}
        for k, v in state.items():
            bits = (
                torch.from_numpy(np.asarray(v, dtype=np.float32))
                .to(torch.bfloat16)
                .view(torch.int16)
            )
            record[k + BF16_SUFFIX] = Array(bits.numpy())
        return ArrayRecord(record)
    raise ValueError(f"unknown transport dtype {dtype!r}")


def from_arrayrecord(record: ArrayRecord) -> dict[str, np.ndarray]:
    """Decode to fp32 numpy arrays, whatever the transport dtype was."""
    state = {}
    for key, array in record.items():
        value = array.numpy()
        if key.endswith(BF16_SUFFIX):
            value = torch.from_numpy(value.copy()).view(torch.bfloat16).to(torch.float32).numpy()
            key = key[: -len(BF16_SUFFIX)]
        state[key] = np.asarray(value, dtype=np.float32)
    return state


def reply_record(
    new: dict[str, np.ndarray], sent: dict[str, np.ndarray], dtype: str
) -> ArrayRecord:
    """A client's adapter for the wire: as is in fp32, as its update against ``sent`` otherwise.

    The server rebuilds θ_k (and checks it) in fgrpo.server.screening."""
    if dtype == "fp32":
        return to_arrayrecord(new, dtype)
    return to_arrayrecord({k + DELTA_SUFFIX: new[k] - sent[k] for k in new}, dtype)
