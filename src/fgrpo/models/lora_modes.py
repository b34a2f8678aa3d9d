"""``model.lora_aggregation`` on the model: which LoRA factors a round trains, and the base
weights' residual of the ``exact`` mode.

Averaging the factors separately gives (Σ w_k B_k)(Σ w_k A_k), not Σ w_k B_k A_k. ``ffa`` (A frozen)
and ``rolora`` (one factor per round) make the plain average exact, since the frozen factor is the
same on every client; ``exact`` keeps both trainable and folds the difference into the base weights
of every adapted layer (FedEx-LoRA): W = W0 + R, where R accumulates over rounds and travels to the
clients (fgrpo.core.protocol.BASE_RESIDUAL_KEY), so every client's base equals the server's.
``fedsa`` (FedSA-LoRA) shares only A: each client trains both factors but keeps its B at home, so
the global adapter is the averaged A (with B as initialised) and each client's model is Ā + B_k.
"""

from __future__ import annotations

import numpy as np
import torch
from peft import PeftModel

A_SUFFIX, B_SUFFIX = ".lora_A.weight", ".lora_B.weight"
ORIGINAL = "_fgrpo_w0"  # attribute of a LoRA layer: its base weight as loaded


def trained_factors(mode: str, server_round: int) -> tuple[bool, bool]:
    """(A trains, B trains) this round. rolora starts with B: with B = 0, A gets no gradient."""
    if mode == "ffa":
        return False, True
    if mode == "rolora":
        return server_round % 2 == 0, server_round % 2 == 1
    return True, True


def shared_part(state: dict[str, np.ndarray], mode: str) -> dict[str, np.ndarray]:
    """What of an adapter travels and is aggregated: all of it, or (fedsa) its A factors."""
    return state if mode != "fedsa" else {k: v for k, v in state.items() if not is_personal(k)}


def personal_part(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """fedsa's client-own factors: the B matrices."""
    return {k: v for k, v in state.items() if is_personal(k)}


def is_personal(name: str) -> bool:
    return name.endswith(B_SUFFIX)


def set_trained_factors(model: PeftModel, mode: str, server_round: int) -> None:
    train_a, train_b = trained_factors(mode, server_round)
    for name, param in model.named_parameters():
        if ".lora_A." in name:
            param.requires_grad_(train_a)
        elif ".lora_B." in name:
            param.requires_grad_(train_b)


def adapted_layers(state: dict[str, np.ndarray]) -> list[str]:
    """The adapted layers of an adapter state: the prefixes of its lora_A / lora_B pairs."""
    return sorted(k[: -len(A_SUFFIX)] for k in state if k.endswith(A_SUFFIX))


def product(state: dict[str, np.ndarray], layer: str) -> np.ndarray:
    """B A of one layer, in float64."""
    b = state[layer + B_SUFFIX].astype(np.float64)
    return b @ state[layer + A_SUFFIX].astype(np.float64)


def residual_step(
    previous: dict[str, np.ndarray],
    new: dict[str, np.ndarray],
    clients: list[dict[str, np.ndarray]],
    weights: list[float],
    server_lr: float,
    scale: float,
) -> dict[str, np.ndarray]:
    """What this round adds to R: the target s·((1−η) B A + η Σ w_k B_k A_k), minus what the new
    adapter gives, s·B'A' (s = lora_alpha / r; η = strategy.server_lr; w_k sum to 1)."""
    out = {}
    for layer in adapted_layers(new):
        mean = sum(w * product(c, layer) for w, c in zip(weights, clients, strict=True))
        target = (1.0 - server_lr) * product(previous, layer) + server_lr * mean
        out[layer] = (scale * (target - product(new, layer))).astype(np.float32)
    return out


def accumulate(total: dict[str, np.ndarray], step: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: total.get(k, 0.0) + v for k, v in step.items()} | {
        k: v for k, v in total.items() if k not in step
    }


def set_base_residual(model: PeftModel, residual: dict[str, np.ndarray]) -> None:
    """Every adapted layer's base weight becomes W0 + R (W0 as loaded; no R: W0 again). The model
    is the process-wide one, so a layer keeps its W0 beside it to return to."""
    for name, module in model.named_modules():
        base = getattr(module, "base_layer", None)
        if base is None or not hasattr(module, "lora_A"):
            continue
        if not hasattr(module, ORIGINAL):
            if name not in residual:
                continue  # never offset: nothing to restore
            setattr(module, ORIGINAL, base.weight.detach().clone())
        w0 = getattr(module, ORIGINAL)
        offset = residual.get(name)
        with torch.no_grad():
            if offset is None:
                base.weight.copy_(w0)
            else:
                r = torch.from_numpy(np.asarray(offset))
                r = r.T if getattr(module, "fan_in_fan_out", False) else r
                base.weight.copy_(w0 + r.to(device=w0.device, dtype=w0.dtype))
