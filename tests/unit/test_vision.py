"""Vision-language models: tiny-vl, LoRA on the language model only, GRPO and evaluation on images,
and one federated round of two clients on the geometry task."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

from fgrpo.core.config import ModelConfig
from fgrpo.models.evaluation import accuracy_by_task, greedy_completions
from fgrpo.models.lora import fresh_adapter_model, lora_config
from fgrpo.models.registry import describe, load_base
from fgrpo.models.transport import adapter_state
from fgrpo.runtime.configs import load_config
from fgrpo.tasks import get_task

VL = [
    "model.name=tiny-vl",
    'data.tasks=["geometry"]',
    "data.train_size=16",
    "data.test_size=4",
    "data.partition=iid",
    "grpo.per_device_train_batch_size=8",
    "grpo.max_completion_length=16",
]


@pytest.fixture(scope="module")
def vl_model():
    return fresh_adapter_model(ModelConfig(name="tiny-vl"), seed=0)


def test_tiny_vl_is_a_vlm_with_a_processor_and_no_download() -> None:
    model, processor = load_base("tiny-vl")
    assert describe("tiny-vl").available and describe("tiny-vl").kind == "random"
    assert hasattr(model.config, "vision_config") and hasattr(processor, "image_processor")
    assert sum(p.numel() for p in model.parameters()) < 2_000_000
    assert processor.tokenizer.convert_tokens_to_ids("<|image_pad|>") == model.config.image_token_id


def test_lora_adapts_the_language_model_only(vl_model) -> None:
    model, _ = vl_model
    keys = list(adapter_state(model))
    assert keys and all(".language_model." in k for k in keys)
    projections = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert {k.split(".")[-3] for k in keys} == projections  # the default: all-linear
    visual = [n for n, _ in model.named_modules() if ".visual." in n and "lora" in n]
    assert not visual
    # empty: PEFT's per-architecture default, still in the language model only
    default = lora_config(ModelConfig(name="tiny-vl", target_modules=[]), model.base_model.model)
    assert (
        default.target_modules.startswith(".*language_model\\.")
        and "q_proj" in default.target_modules
    )
    # an explicit list is the user's choice, as in PEFT
    assert lora_config(
        ModelConfig(name="tiny-vl", target_modules=["qkv"]), model.base_model.model
    ).target_modules == {"qkv"}


def visual_inputs(model, run) -> list[torch.Size]:
    """Shapes of what the vision tower was given while ``run()`` ran."""
    seen: list[torch.Size] = []
    hook = model.base_model.model.model.visual.register_forward_hook(
        lambda _m, args, _o: seen.append(args[0].shape)
    )
    try:
        run()
    finally:
        hook.remove()
    return seen


def test_evaluation_reads_the_image(vl_model) -> None:
    model, processor = vl_model
    rows = get_task("geometry").generate(3, seed=0)
    prompts, images = [r["prompt"] for r in rows], [r["image"] for r in rows]
    out: list[str] = []
    seen = visual_inputs(
        model, lambda: out.extend(greedy_completions(model, processor, prompts, 8, images=images))
    )
    # 224 px figures shrink to 112 px: 8 x 8 patches each, of 3 channels x 2 frames x 14 x 14 pixels
    assert len(out) == 3 and seen == [torch.Size([3 * 64, 3 * 2 * 14 * 14])]
    accuracy = accuracy_by_task(model, processor, {"geometry": rows}, 8, batch_size=2)
    assert set(accuracy) == {"geometry", "macro"} and 0.0 <= accuracy["geometry"] <= 1.0
    text_only = greedy_completions(model, processor, [[{"role": "user", "content": "1+1=?"}]], 4)
    assert len(text_only) == 1  # a VLM answers text prompts too


def test_round0_cache_key_names_figures_by_their_pixels(vl_model) -> None:
    from fgrpo.core.config import EvalConfig
    from fgrpo.runtime.round0 import evaluation_key

    model, processor = vl_model
    keys = [
        evaluation_key(
            model, processor, {"geometry": get_task("geometry").generate(3, seed=s)}, EvalConfig()
        )
        for s in (0, 0, 1)
    ]
    assert (
        keys[0] is not None and keys[0] == keys[1] != keys[2]
    )  # fresh image objects, same pictures: same key


def test_grpo_step_on_figures_feeds_the_vision_tower_and_moves_the_adapter(vl_model) -> None:
    from datasets import Dataset

    from fgrpo.client.grpo import train_locally

    model, processor = vl_model
    cfg = load_config(None, VL + ["grpo.learning_rate=0.05"])
    data = Dataset.from_list(get_task("geometry").generate(8, seed=1, share="train"))

    def digits(completions, **_):  # varies across a random policy's samples: a GRPO signal
        return [float(sum(ch.isdigit() for ch in str(c))) for c in completions]

    before = adapter_state(model)
    stats = []
    seen = visual_inputs(
        model,
        lambda: stats.append(train_locally(model, processor, data, [digits], cfg, seed=3, steps=1)),
    )
    after = adapter_state(model)
    assert stats[0].steps == 1 and seen, "GRPO must run the vision tower on the figures"
    assert all(shape[-1] == 3 * 2 * 14 * 14 for shape in seen)
    assert any(not np.array_equal(before[k], after[k]) for k in before), "the adapter must move"


def test_two_clients_one_round_on_figures(tmp_path) -> None:
    from fgrpo.runtime.runner import run_experiment

    # FGRPO with its probe signal: each client also decodes greedy answers to probe figures drawn
    # beside the training pool (the same question text as pool figures: the probe must tell them
    # apart)
    cfg = load_config(
        None,
        VL
        + [
            "federation.num_clients=2",
            "federation.rounds=1",
            "federation.local_steps=1",
            "strategy.name=fgrpo",
            "data.probe_size=4",
        ],
    )
    run_experiment(cfg, tmp_path)
    (record,) = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert record["aggregated"] and len(record["clients"]) == 2
    assert sum(c["weight"] for c in record["clients"]) == pytest.approx(1.0)
    assert all(
        c["tasks"]["geometry"]["baseline"] is not None for c in record["clients"]
    )  # the probe scored figures
    assert record["train"]["completion-length"] > 0 and set(record["eval"]) == {"geometry", "macro"}
    # the adapter came back from both clients and was aggregated: language-model LoRA only
    adapter = load_file(str(tmp_path / "final" / "adapter" / "adapter_model.safetensors"))
    assert adapter and all(".language_model." in k for k in adapter)
    sent = adapter_state(fresh_adapter_model(cfg.model, cfg.seed)[0])
    assert set(adapter) == set(sent) and all(adapter[k].shape == v.shape for k, v in sent.items())
    # A random policy scores 0 on (nearly) every figure, so GRPO seldom has an advantage to follow
    # here; the GRPO test above shows the adapter moving when rewards differ.
    assert np.isfinite(record["train"]["update-norm"])
