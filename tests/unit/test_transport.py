"""Adapter transport (fp32 lossless, bf16 within bf16 precision) and LoRA target-module choice."""

import numpy as np
import pytest
import torch

from fgrpo.core.config import ModelConfig
from fgrpo.models.lora import fresh_adapter_model, lora_config
from fgrpo.models.transport import (
    BF16_SUFFIX,
    adapter_state,
    from_arrayrecord,
    load_adapter_state,
    to_arrayrecord,
)


def random_state(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "base_model.model.layers.0.self_attn.q_proj.lora_A.weight": rng.normal(
            size=(8, 128)
        ).astype(np.float32),
        "base_model.model.layers.0.self_attn.q_proj.lora_B.weight": (
            rng.normal(size=(128, 8)) * 1e-3
        ).astype(np.float32),
        "tiny": np.array([1e-30, -3.0e38, 0.0, 1.0 + 2**-20], dtype=np.float32),
    }


def test_fp32_round_trip_is_lossless():
    state = random_state()
    back = from_arrayrecord(to_arrayrecord(state, "fp32"))
    assert set(back) == set(state)
    for key, value in state.items():
        assert back[key].dtype == np.float32 and back[key].shape == value.shape
        assert np.array_equal(back[key], value), key


def test_bf16_round_trip_within_bf16_precision():
    state = random_state()
    record = to_arrayrecord(state, "bf16")
    assert all(key.endswith(BF16_SUFFIX) for key in record)
    wire = sum(array.numpy().nbytes for array in record.values())
    assert wire * 2 == sum(v.nbytes for v in state.values())  # half the bytes on the wire
    back = from_arrayrecord(record)
    assert set(back) == set(state)
    for key, value in state.items():
        assert back[key].dtype == np.float32 and back[key].shape == value.shape
        # bf16 keeps 8 significand bits: relative error <= 2^-8 after round-to-nearest
        np.testing.assert_allclose(back[key], value, rtol=2**-8, atol=0)
        assert np.array_equal(back[key], torch.from_numpy(value).to(torch.bfloat16).float().numpy())
    assert not np.array_equal(
        back["tiny"], state["tiny"]
    )  # 1 + 2^-20 is not representable: it is lossy


def test_unknown_transport_dtype_is_rejected():
    with pytest.raises(ValueError, match="fp16"):
        to_arrayrecord(random_state(), "fp16")


def test_adapter_state_round_trips_through_the_model():
    model, _ = fresh_adapter_model(ModelConfig(name="tiny-random"), seed=0)
    state = {k: v + 0.25 for k, v in adapter_state(model).items()}
    load_adapter_state(model, from_arrayrecord(to_arrayrecord(state, "fp32")))
    for key, value in adapter_state(model).items():
        assert np.array_equal(value, state[key])
    with pytest.raises(ValueError, match="adapter keys"):
        load_adapter_state(model, {"nope": np.zeros(1, dtype=np.float32)})


def lora_targets(model) -> set[str]:
    return {
        name.split(".")[-1] for name, module in model.named_modules() if hasattr(module, "lora_A")
    }


def test_target_modules_default_to_every_linear_layer_and_empty_is_peft_per_architecture():
    assert lora_config(ModelConfig(name="tiny-random")).target_modules == "all-linear"
    model, _ = fresh_adapter_model(ModelConfig(name="tiny-random"), seed=0)
    assert lora_targets(model) == {
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    }  # every linear layer but lm_head
    per_architecture = ModelConfig(name="tiny-random", target_modules=[])
    assert lora_config(per_architecture).target_modules is None
    model, _ = fresh_adapter_model(per_architecture, seed=0)
    assert lora_targets(model) == {"q_proj", "v_proj"}  # PEFT's Llama default


def test_target_modules_from_config_are_used():
    cfg = ModelConfig(
        name="tiny-random", target_modules=["q_proj", "k_proj", "down_proj"], lora_r=4
    )
    model, _ = fresh_adapter_model(cfg, seed=0)
    assert lora_targets(model) == {"q_proj", "k_proj", "down_proj"}
    a = next(v for k, v in adapter_state(model).items() if "down_proj.lora_A" in k)
    assert a.shape[0] == 4


def test_bf16_reply_carries_a_real_trained_update_within_one_percent():
    """An update is ~1e-3 of the adapter: quantising θ_k (18% error in the issue) is not quantising
    Δ."""
    from fgrpo.client.grpo import train_locally
    from fgrpo.data.partitions import client_partition
    from fgrpo.models.transport import reply_record
    from fgrpo.runtime.configs import load_config
    from fgrpo.server.screening import decode_tensors

    def received_adapter(record, sent):  # what the server rebuilds from a reply
        return decode_tensors(record, sent, "adapter", relative=True)

    def length_reward(
        completions, **_
    ):  # varies across a random model's samples: GRPO always moves
        return [float(len(str(c))) for c in completions]

    cfg = load_config(
        None,
        [
            "model.name=tiny-random",
            'data.tasks=["sorting"]',
            "data.train_size=32",
            "grpo.max_completion_length=8",
            "federation.num_clients=1",
        ],
    )
    model, tokenizer = fresh_adapter_model(cfg.model, seed=0)
    data, rewards = client_partition(cfg, 0), [length_reward]
    train_locally(
        model, tokenizer, data, rewards, cfg, seed=1, steps=2
    )  # a global adapter with B != 0
    sent = adapter_state(model)
    train_locally(model, tokenizer, data, rewards, cfg, seed=2, steps=2)
    new = adapter_state(model)

    def relative_error(arrived: dict[str, np.ndarray]) -> float:
        err = sum(float(((arrived[k] - new[k]) ** 2).sum()) for k in new)
        return (err / sum(float(((new[k] - sent[k]) ** 2).sum()) for k in new)) ** 0.5

    record = reply_record(new, sent, "bf16")
    assert all(k.endswith("::delta" + BF16_SUFFIX) for k in record)
    assert relative_error(received_adapter(record, sent)) < 0.01
    assert (
        relative_error(from_arrayrecord(to_arrayrecord(new, "bf16"))) > 0.01
    )  # the old absolute transport
    exact = received_adapter(reply_record(new, sent, "fp32"), sent)
    assert all(np.array_equal(exact[k], new[k]) for k in new)
