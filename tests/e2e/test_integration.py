"""Whole runs through Flower's simulation engine: the walking skeleton end to end."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from fgrpo.runtime.configs import load_config
from fgrpo.runtime.runner import run_experiment

from ..run_checks import SMALL, check_run_dir

ROOT = Path(__file__).resolve().parents[2]


def test_fedavg_two_clients_two_rounds_changes_the_adapter_and_loads_in_peft(tmp_path):
    from peft import PeftModel

    from fgrpo.models.registry import load_base

    cfg = load_config(
        None, SMALL + ["federation.num_clients=2", "federation.rounds=2", "strategy.name=fedavg"]
    )
    run_experiment(cfg, tmp_path)
    records = check_run_dir(tmp_path, rounds=2, clients=2)
    for record in records:  # FedAvg: weight = n_k / sum n
        sizes = [c["num-examples"] for c in record["clients"]]
        assert [c["weight"] for c in record["clients"]] == pytest.approx(
            [n / sum(sizes) for n in sizes]
        )
        assert all(c["gain"] is None for c in record["clients"])
    adapter = load_file(str(tmp_path / "final" / "adapter" / "adapter_model.safetensors"))
    lora_b = [v for k, v in adapter.items() if "lora_B" in k]
    assert lora_b and any(np.abs(v).max() > 0 for v in lora_b), (
        "LoRA B starts at zero; training must move it"
    )
    base, _ = load_base("tiny-random")
    model = PeftModel.from_pretrained(base, tmp_path / "final" / "adapter")
    assert sum("lora_" in name for name, _ in model.named_parameters()) == 2 * len(lora_b)


def test_cli_run_with_fgrpo_honours_rounds_and_clients(tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "fgrpo",
        "run",
        "--config",
        str(ROOT / "configs" / "demo.toml"),
        "--out",
        str(tmp_path),
    ]
    for override in SMALL + [
        "federation.rounds=2",
        "federation.num_clients=3",
        "federation.local_steps=2",  # the demo's 10 would add 48 GRPO steps and test nothing more
        "strategy.name=fgrpo",
        "eval.every=1",
        "grpo.per_device_train_batch_size=8",
    ]:
        cmd += ["--set", override]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "round 2/2" in proc.stdout and str(tmp_path) in proc.stdout
    records = check_run_dir(tmp_path, rounds=2, clients=3)
    assert all(c["gain"] == 0.0 for c in records[0]["clients"])  # first report: b := p, g := 0
    assert all(
        c["tasks"] and all(t["baseline"] is not None for t in c["tasks"].values())
        for r in records
        for c in r["clients"]
    )  # baselines per (client, task)
