"""Devices and dtypes: every ``model.dtype`` runs end to end, each tensor the client builds lives on
the device of the parameters it belongs to, and the server evaluates on ``eval.device``."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from flwr.app import ConfigRecord

from fgrpo.core.errors import ConfigError
from fgrpo.models.devices import resolve_device
from fgrpo.runtime.configs import load_config

from ..replies import reply
from ..run_checks import ROOT, check_run_dir
from ..strategy_helpers import FakeGrid, client_context, make

TINY_DIR = ROOT / "src" / "fgrpo" / "models" / "tiny"


@pytest.mark.parametrize("name", ["tiny", "tiny-random", "tiny-vl", str(TINY_DIR)])
def test_every_kind_of_model_loads_in_model_dtype(name):
    from fgrpo.models.registry import load_base

    model, _ = load_base(name, "bfloat16")
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}


def test_a_federation_of_the_shipped_model_in_bfloat16_completes_on_the_cpu(tmp_path):
    """The round-0 cache key hashed the weights through numpy, which has no bfloat16."""
    from fgrpo.runtime.runner import run_experiment

    cfg = load_config(
        ROOT / "configs" / "demo.toml",
        [
            f"model.name={TINY_DIR}",
            "model.dtype=bfloat16",
            "federation.num_clients=2",
            "federation.rounds=1",
            "federation.local_steps=1",
            'data.tasks=["sorting", "addition"]',
            'data.partition="iid"',
            "data.train_size=32",
            "data.test_size=4",
            "grpo.max_completion_length=16",
            "grpo.per_device_train_batch_size=8",
            "eval.device=cpu",
        ],
    )
    run_experiment(cfg, tmp_path)
    [record] = check_run_dir(tmp_path, rounds=1, clients=2)
    assert all(np.isfinite(c["reward"]) for c in record["clients"])


# --- the client's tensors follow its parameters ----------------------------------------------

CLIENT = [
    "model.name=tiny-random",
    'data.tasks=["sorting"]',
    "data.train_size=32",
    "federation.num_clients=1",
]


def planned_round(strategy: str):
    """(model, plan) of one client's round under ``strategy``, planned with the model on the CPU."""
    from fgrpo.client.algorithms import plan_round
    from fgrpo.data.partitions import client_partition
    from fgrpo.models.lora import fresh_adapter_model
    from fgrpo.models.transport import adapter_state, to_arrayrecord

    cfg = load_config(None, CLIENT)
    model, _ = fresh_adapter_model(cfg.model, seed=0)
    x = adapter_state(model)
    reply("warm-up", {"w": [0.0]}, 1, 0.0)  # gives the test process a Flower task identity
    s = make(strategy)
    if strategy == "scaffold":
        s.control = {k: np.full_like(v, 0.5) for k, v in x.items()}
    message = next(
        iter(
            s.configure_train(
                1, to_arrayrecord(x), ConfigRecord({"fgrpo-config": "{}"}), FakeGrid(1)
            )
        )
    )
    return model, plan_round(
        message, client_context(1), model, "client-0", client_partition(cfg, 0)
    )


# Moving the model after the plan, as TRL's trainer moves it to the GPU: on a CPU-only machine a
# change of dtype is the move that keeps the parameter objects (as a CPU -> GPU move does).
MOVED = torch.float64


def test_the_fedprox_anchor_follows_the_parameters_the_trainer_moved():
    from fgrpo.client.algorithms import adapter_parameters

    model, plan = planned_round("fedprox")
    proximal = plan.trainer_kwargs["proximal"]
    model.to(MOVED)
    params = adapter_parameters(model)
    with torch.no_grad():  # theta moves away from theta_global by 0.1 everywhere
        for p in params.values():
            p.add_(0.1)
    term = proximal()
    assert term.dtype == MOVED
    assert all(
        proximal.anchor[k].dtype == MOVED and proximal.anchor[k].device == p.device
        for k, p in params.items()
    )
    count = sum(p.numel() for p in params.values())
    assert term.item() == pytest.approx(0.5 * proximal.mu * 0.01 * count, rel=1e-6)


def test_the_scaffold_correction_follows_the_parameters_the_trainer_moved():
    from fgrpo.client.algorithms import adapter_parameters

    model, plan = planned_round("scaffold")
    [correction] = plan.trainer_kwargs["callbacks"]
    model.to(MOVED)
    params = adapter_parameters(model)
    before = {k: p.detach().clone() for k, p in params.items()}
    optimizer = torch.optim.SGD(params.values(), lr=0.2)
    correction.on_optimizer_step(None, None, None, optimizer=optimizer)
    for k, p in params.items():
        assert (
            correction.correction[k].dtype == MOVED and correction.correction[k].device == p.device
        )
        torch.testing.assert_close(
            p.detach(), before[k] - 0.2 * 0.5
        )  # c − c_i = 0.5 − 0 in a first round


def test_the_client_prepares_its_round_on_the_device_trl_trains_on(tmp_path):
    from fgrpo.client.grpo import grpo_args, training_device

    args = grpo_args(load_config(None, CLIENT), str(tmp_path), seed=0, steps=1)
    assert (
        torch.empty(0, device=args.device).device == torch.empty(0, device=training_device()).device
    )


# --- eval.device --------------------------------------------------------------------------------


def test_eval_device_auto_is_the_accelerator_when_there_is_one():
    expected = (
        "cuda"
        if torch.cuda.is_available()
        else "mps"
        if torch.backends.mps.is_available()
        else "cpu"
    )
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("value", ["gpu", "cuda:", "cuda:x", "CPU", ""])
def test_a_malformed_eval_device_is_refused_with_the_key(value):
    with pytest.raises(ConfigError, match=r"^eval\.device: must be auto, cpu, cuda, cuda:N or mps"):
        load_config(None, [f'eval.device="{value}"'])


@pytest.mark.skipif(torch.cuda.device_count() > 7, reason="this machine has a cuda:7")
def test_a_device_the_machine_lacks_stops_fgrpo_run_in_one_line(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "fgrpo",
            "run",
            "--out",
            str(tmp_path / "run"),
            "--set",
            "model.name=tiny-random",
            "--set",
            "eval.device=cuda:7",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"fgrpo: config error: eval.device: 'cuda:7' asked for, but torch sees {torch.cuda.device_count()} "
        "CUDA device(s) here; use auto or cpu"
    ]


def test_the_server_evaluates_its_model_on_eval_device(tmp_path):
    """On a machine with a GPU: the server's model generates there (eval.device = auto)."""
    from fgrpo.runtime.journal import RunJournal

    cfg = load_config(None, CLIENT + ["data.test_size=4"])
    journal = RunJournal(cfg, tmp_path, progress=lambda line: None)
    seen = []
    real = journal.model.generate

    def generate(*args, **kwargs):
        seen.append(kwargs["input_ids"].device)
        return real(*args, **kwargs)

    journal.model.generate = generate
    assert set(journal.evaluate()["eval"]) == {"sorting", "macro"}
    assert seen and set(seen) == {resolve_device("auto")}


# --- benchmarks/gpu_smoke.py ----------------------------------------------------------------------


def test_gpu_smoke_runs_one_round_step_by_step_on_the_cpu(tmp_path):
    out = tmp_path / "smoke.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "gpu_smoke.py"),
            "--device",
            "cpu",
            "--model",
            "tiny",
            "--local-steps",
            "1",
            "--test-size",
            "4",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert (
        doc["command"].startswith("python benchmarks/gpu_smoke.py --device cpu")
        and doc["date"]
        and doc["machine"]
    )
    assert (doc["client_device"], doc["eval_device"], doc["base_dtype"]) == (
        "cpu",
        "cpu",
        "torch.bfloat16",
    )
    names = [s["step"] for s in doc["steps"]]
    assert names[-2:] == ["server: aggregation", "server: evaluation"]
    assert sum(name.startswith("client ") and "GRPO" in name for name in names) == 2
    assert all(s["seconds"] >= 0 and s["peak_rss_mib"] > 0 for s in doc["steps"])
    assert sorted(c["client-id"] for c in doc["clients"]) == ["client-0", "client-1"]
    assert sum(c["weight"] for c in doc["clients"]) == pytest.approx(1.0)
    assert all(
        any("before" in key for key in c["signals"]) for c in doc["clients"]
    )  # the delta probe's first half
    assert 0 <= doc["eval"]["macro"] <= 1


def test_gpu_smoke_without_a_gpu_says_so_in_one_line():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_smoke.py"), "--model", "tiny"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "gpu_smoke: --device cuda, but torch sees no CUDA device here; use --device cpu"
    ]
