"""`fgrpo run --dry-run` on paper-scale GPU configs: the plan, the memory estimate, and what an
unreachable hub leaves unchecked."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fgrpo.models.memory import GB, estimate, memory_line
from fgrpo.runtime.configs import load_config

ROOT = Path(__file__).resolve().parents[2]
GPU_CONFIG = ROOT / "configs" / "gpu" / "openr1_qwen3_4b.toml"
# Qwen3-4B's architecture (its config.json on the hub)
H, LAYERS, HEADS, KV, HD, FF, V = 2560, 36, 32, 8, 128, 9728, 151936


@pytest.fixture
def qwen3_4b_dir(tmp_path):
    from transformers import Qwen3Config

    Qwen3Config(
        hidden_size=H,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        num_key_value_heads=KV,
        head_dim=HD,
        intermediate_size=FF,
        vocab_size=V,
        tie_word_embeddings=True,
    ).save_pretrained(tmp_path)
    return tmp_path


def test_memory_estimate_of_qwen3_4b_by_hand(qwen3_4b_dir):
    cfg = load_config(str(GPU_CONFIG), [f"model.name={qwen3_4b_dir}"])
    m = estimate(cfg)
    per_layer = H * HEADS * HD + 2 * H * KV * HD + HEADS * HD * H + 3 * H * FF + 2 * H + 2 * HD
    assert m.params == V * H + LAYERS * per_layer + H  # tied embeddings, final norm: 4.02B
    r = cfg.model.lora_r  # all-linear: every projection of every layer, not the (tied) output
    lora = r * ((H + HEADS * HD) * 2 + 2 * (H + KV * HD) + 3 * (H + FF))
    assert m.trainable == LAYERS * lora
    micro, completion, tokens = 16, 1024, 256 + 1024
    assert m.weights == m.params * 2  # model.dtype = bfloat16
    assert m.adapter == m.trainable * 16
    assert m.kv_cache == 2 * LAYERS * KV * HD * tokens * micro * 2
    assert m.logits == micro * completion * V * 4
    # checkpointed: each layer's input, then one layer's full set (17 h + 4 i + 4 kv values)
    one_layer = micro * tokens * (17 * H + 4 * FF + 4 * KV * HD) * 2
    assert m.activations == micro * tokens * H * 2 * LAYERS + one_layer
    assert 25 < m.total / GB < 35
    line = memory_line(cfg)
    assert "4.02B parameters" in line and "vLLM's 0.3 of the GPU" in line


def test_dry_run_of_the_gpu_config_plans_offline_and_says_what_it_could_not_check(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "fgrpo",
            "run",
            "--config",
            str(GPU_CONFIG),
            "--out",
            str(tmp_path / "run"),
            "--dry-run",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert (
        "8 clients, 30 rounds x 10 local steps (2400 client-steps of 16 completions)" in out.stdout
    )
    assert "not checked here: model.name 'Qwen/Qwen3-4B'" in out.stdout
    assert "not checked here: open-r1/OpenR1-Math-220k" in out.stdout
    assert not (tmp_path / "run").exists()  # nothing written


def test_model_dtype_and_all_linear_reach_the_loaded_model(tmp_path):
    import torch

    from fgrpo.core.config import ModelConfig
    from fgrpo.models.lora import fresh_adapter_model
    from fgrpo.models.registry import load_base

    model, tokenizer = load_base("tiny-random")
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    peft_model, _ = fresh_adapter_model(
        ModelConfig(name=str(tmp_path), dtype="bfloat16", target_modules=["all-linear"]), 0
    )
    base_dtypes = {p.dtype for n, p in peft_model.named_parameters() if "lora_" not in n}
    assert base_dtypes == {torch.bfloat16}
    adapted = {
        n.split(".lora_A")[0].split(".")[-1]
        for n, _ in peft_model.named_parameters()
        if "lora_A" in n
    }
    assert adapted == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


def test_the_estimate_counts_the_runs_own_prompts_and_on_a_cpu_the_process(monkeypatch):
    from fgrpo.data.partitions import training_pool
    from fgrpo.models.memory import PROMPT_TOKENS
    from fgrpo.models.registry import load_base

    cfg = load_config(None, ["model.name=tiny-random", "data.train_size=40"])
    _, tokenizer = load_base("tiny-random")
    longest = max(
        len(tokenizer.apply_chat_template(r["prompt"], add_generation_prompt=True)["input_ids"])
        for r in training_pool(cfg)
    )
    m = estimate(cfg)
    assert m.prompt_tokens == longest < PROMPT_TOKENS
    tokens = longest + cfg.grpo_settings()["max_completion_length"]
    assert m.kv_cache > 0 and m.activations % tokens == 0  # both scale with prompt + completion
    assert m.process > 200 * 2**20  # torch alone is more than 200 MB resident
    assert m.total == m.weights + m.adapter + m.kv_cache + m.logits + m.activations + m.process
    assert f"prompts of {longest} tokens" in memory_line(cfg) and "+ process" in memory_line(cfg)
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)  # a GPU run: the process is not
    assert estimate(cfg).process == 0.0  # on the device the estimate is about
