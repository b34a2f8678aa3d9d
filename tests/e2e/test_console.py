"""`fgrpo run`'s console: Flower's simulation entry point (fgrpo.runtime.flower_simulation),
library output routed to RUN_DIR/run.log (fgrpo.runtime.console), and the clients' step
progress (fgrpo.client.progress)."""

from __future__ import annotations

import importlib
import inspect
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fgrpo.client.progress import step_reporters, write_progress
from fgrpo.runtime import flower_simulation
from fgrpo.runtime.console import client_steps, clients_text

ROOT = Path(__file__).resolve().parents[2]
TINY_RUN = [
    "--set",
    "model.name=tiny-random",
    "--set",
    "federation.num_clients=2",
    "--set",
    "federation.rounds=1",
    "--set",
    "federation.local_steps=1",
    "--set",
    "data.train_size=64",
    "--set",
    "data.test_size=8",
    "--set",
    "grpo.per_device_train_batch_size=4",
    "--set",
    "grpo.max_completion_length=8",
    "--set",
    "eval.max_new_tokens=8",
]
CHATTER = ("DEPRECATED", "Warning", "WARNING", "ClientAppActor", "Loading weights", "pid=")


def python(code: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    return subprocess.run(
        [sys.executable, *(["-c", code] if code else []), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        cwd=ROOT,
    )


# --- Flower's simulation runtime, through one adapter
# ----------------------------------------------


def test_the_adapter_runs_what_flwr_run_runs_and_what_run_simulation_wraps():
    runtime = flower_simulation.check_flower()
    assert (
        runtime is importlib.import_module("flwr.simulation.app")._run_simulation
    )  # `flwr run`'s simulation
    public = importlib.import_module("flwr.simulation.run_simulation").run_simulation
    assert "_run_simulation(" in inspect.getsource(
        public
    )  # the deprecated API is a wrapper of the same call
    assert set(flower_simulation.USED_PARAMETERS) <= set(inspect.signature(runtime).parameters)


def test_the_adapter_fails_loudly_when_flower_changes(monkeypatch):
    module = importlib.import_module(flower_simulation.RUNTIME_MODULE)
    monkeypatch.setattr(
        module, "_run_simulation", lambda num_supernodes, client_app, server_app: None
    )
    with pytest.raises(
        flower_simulation.FlowerChanged, match="lacks exit_event, backend_name, backend_config"
    ):
        flower_simulation.check_flower()
    monkeypatch.delattr(module, "_run_simulation")
    with pytest.raises(
        flower_simulation.FlowerChanged,
        match="has no flwr.simulation.run_simulation._run_simulation",
    ):
        flower_simulation.check_flower()
    monkeypatch.undo()
    monkeypatch.setattr(
        importlib.import_module("flwr.simulation.app"), "_run_simulation", lambda **kwargs: None
    )
    with pytest.raises(flower_simulation.FlowerChanged, match="no longer runs"):
        flower_simulation.check_flower()


# --- run.log
# ---------------------------------------------------------------------------------------

ROUTED = textwrap.dedent("""
    import logging, os, sys, warnings
    from pathlib import Path
    from flwr.supercore import log
    from fgrpo.runtime.console import RunConsole

    with RunConsole(Path(sys.argv[1]), rounds=1, local_steps=1) as console:
        print("a library's print")
        warnings.warn("a library's FutureWarning", FutureWarning)
        log(logging.WARNING, "a Flower WARNING line")
        os.write(2, b"C-level stderr\\n")
        console.line("round 1/1 | our line")
    print("after the run")
""")


def test_library_output_goes_to_run_log_and_our_lines_to_the_screen(tmp_path):
    proc = python(ROUTED, str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert (
        proc.stdout.splitlines() == ["round 1/1 | our line", "after the run"] and proc.stderr == ""
    )
    log = (tmp_path / "run.log").read_text()
    for message in (
        "a library's print",
        "a library's FutureWarning",
        "WARNING :   a Flower WARNING line",
        "C-level stderr",
        "round 1/1 | our line",
    ):
        assert message in log
    assert "\033[" not in log.split("a Flower")[0][-40:]  # Flower's colour codes stay off the file


# --- clients' step progress
# ------------------------------------------------------------------------


def test_progress_text_counts_clients_done_and_steps(tmp_path):
    write_progress(tmp_path, "client-0", 3, 10, 10)
    write_progress(tmp_path, "client-1", 3, 4, 10)
    write_progress(tmp_path, "client-2", 2, 10, 10)  # last round's file: not this round
    steps = client_steps(tmp_path, 3)
    assert steps == {"client-0": (10, 10), "client-1": (4, 10)}
    assert clients_text(4, 10, steps) == ("clients 1/4 done | running client-1 4/10", 14, 40)
    assert (
        clients_text(2, 10, {"a": (10, 10), "b": (10, 10)})[0]
        == "clients 2/2 done | aggregating, evaluating"
    )
    assert clients_text(2, 10, {})[0] == "clients 0/2 done | starting clients"


def test_a_client_reports_every_local_step(tmp_path, monkeypatch):
    from fgrpo.client.grpo import train_locally
    from fgrpo.data.partitions import client_partition
    from fgrpo.models.lora import fresh_adapter_model
    from fgrpo.runtime.configs import load_config

    seen: list[int] = []
    real = write_progress

    def recording(directory, client_id, server_round, step, steps):
        seen.append(step)
        real(directory, client_id, server_round, step, steps)

    monkeypatch.setattr("fgrpo.client.progress.write_progress", recording)
    assert step_reporters("client-0", 1, 2) == []  # outside `fgrpo run`: nothing written
    monkeypatch.setenv("FGRPO_PROGRESS_DIR", str(tmp_path))
    cfg = load_config(
        None,
        [
            "model.name=tiny-random",
            'data.tasks=["sorting"]',
            "data.train_size=32",
            "data.test_size=4",
            "grpo.max_completion_length=8",
            "grpo.per_device_train_batch_size=4",
        ],
    )
    model, tokenizer = fresh_adapter_model(cfg.model, seed=0)
    reporters = step_reporters("client-0", 5, 2)
    train_locally(
        model,
        tokenizer,
        client_partition(cfg, 0),
        [lambda completions, **_: [1.0] * len(completions)],
        cfg,
        seed=0,
        steps=2,
        callbacks=reporters,
    )
    assert seen == [0, 1, 2] and client_steps(tmp_path, 5) == {"client-0": (2, 2)}


# --- the whole command ----------------------------------------------------------------------------


@pytest.mark.slow
def test_a_run_prints_only_the_round_lines_and_the_summary(tmp_path):
    """One real round: no deprecation banner, warning or worker message reaches the terminal;
    run.log holds them, the clients' (Ray workers') among them."""
    out = tmp_path / "run"
    proc = python("", "-m", "fgrpo", "run", *TINY_RUN, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    screen = proc.stdout + proc.stderr
    assert not [word for word in CHATTER if word in screen], screen
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("round 0/1 | macro acc") and lines[1].startswith(
        "round 1/1 | clients 2"
    )
    assert lines[2].startswith("fgrpo: 1 rounds of fgrpo") and proc.stderr == ""
    log = (out / "run.log").read_text()
    assert (
        "FutureWarning" in log and "Manually terminating ClientAppActor" in log
    )  # driver's and workers'
