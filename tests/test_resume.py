"""Resume and run-directory safety: strategy, RNG and client state survive a restart; a killed
run resumed with `fgrpo run --resume` ends where an uninterrupted one does; run directories are
never mixed or deleted by mistake."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, RecordDict
from safetensors.numpy import load_file

from fgrpo.cli.main import main
from fgrpo.client.persistence import StateStore
from fgrpo.core.protocol import DELTA_VARIATE_KEY, TASK_MIX_KEY
from fgrpo.runtime.checkpoint import (
    Checkpoint,
    checkpoint_round,
    join_arrays,
    load_checkpoint,
    restore_rng,
    rng_state,
    save_checkpoint,
    split_arrays,
)
from fgrpo.runtime.configs import load_config
from fgrpo.runtime.run_dir import prepare
from fgrpo.runtime.run_setup import claim_fresh, clear, resume_config
from fgrpo.server.strategies import STRATEGIES

from .replies import reply
from .test_strategies import FakeGrid, make

ROOT = Path(__file__).resolve().parents[1]


# --- strategy state: every registered strategy continues exactly after a round trip --------


def through_disk(state: dict, tmp_path: Path) -> dict:
    """What a checkpoint does to a strategy's state: JSON for the tree, npz for the arrays."""
    arrays: dict[str, np.ndarray] = {}
    tree = json.dumps(split_arrays(state, arrays, "s"))
    np.savez(tmp_path / "a.npz", **arrays)
    with np.load(tmp_path / "a.npz", allow_pickle=False) as loaded:
        return join_arrays(json.loads(tree), loaded)


def round_replies(name: str, rnd: int) -> list:
    """Two clients whose adapters, rewards and (SCAFFOLD) variates change with the round."""
    out = []
    for cid, n, w, r in (
        ("a", 30, [3.0 + rnd, 1.0 - rnd], 0.2 * rnd),
        ("b", 10, [1.0, 5.0 * rnd], 0.5 / rnd),
    ):
        message = reply(cid, {"w": w}, n, r, {"addition": (r, 4)})
        if name == "scaffold":
            message.content[DELTA_VARIATE_KEY] = ArrayRecord(
                {"w": Array(np.asarray([0.1 * rnd, -0.2], dtype=np.float32))}
            )
        if name == "local-only":
            message.content[TASK_MIX_KEY] = ConfigRecord({"addition": n})
        out.append(message)
    return out


def play_round(strategy, name: str, rnd: int, x: np.ndarray) -> np.ndarray:
    replies = round_replies(
        name, rnd
    )  # first: building a reply gives the process a Flower task identity
    arrays = ArrayRecord({"w": Array(x.astype(np.float32))})
    list(strategy.configure_train(rnd, arrays, ConfigRecord({"fgrpo-config": "{}"}), FakeGrid(2)))
    aggregated, _ = strategy.aggregate_train(rnd, replies)
    return x if aggregated is None else aggregated["w"].numpy()


FEDERATED = [name for name, entry in STRATEGIES.items() if entry.resumable]


@pytest.mark.parametrize("name", FEDERATED)
def test_every_strategy_continues_after_its_state_went_through_a_checkpoint(name, tmp_path):
    settings = ("strategy.opt_eta=0.1", "strategy.server_momentum=0.5")
    original = make(name, *settings)
    x = np.zeros(2, dtype=np.float32)
    for rnd in (1, 2):
        x = play_round(original, name, rnd, x)
    restored = make(name, *settings)
    restored.load_state_dict(through_disk(original.state_dict(), tmp_path))
    for rnd in (3, 4):  # the restart happens between rounds 2 and 3
        x_original, x_restored = (
            play_round(original, name, rnd, x),
            play_round(restored, name, rnd, x),
        )
        np.testing.assert_array_equal(x_restored, x_original)
        assert restored.ledger == original.ledger
        x = x_original
    assert fingerprint(restored.state_dict()) == fingerprint(original.state_dict())


def fingerprint(state) -> str:
    return json.dumps(state, sort_keys=True, default=lambda a: [str(a.dtype), a.tolist()])


@pytest.mark.parametrize(
    "name, fields",
    [
        ("fedadam", ["fedopt"]),
        ("fedyogi", ["fedopt"]),
        ("fedadagrad", ["fedopt"]),
        ("fgrpo-adam", ["fedopt", "history"]),
        ("fedavgm", ["fedavgm"]),
        ("fgrpo", ["history"]),
        ("scaffold", ["control", "accepted"]),
        ("local-only", ["clients"]),
    ],
)
def test_stateful_strategies_checkpoint_their_state(name, fields):
    """The fresh strategy's state differs from a trained one's in every field that carries state."""
    trained = make(name, "strategy.server_momentum=0.5")
    x = np.zeros(2, dtype=np.float32)
    for rnd in (1, 2):
        x = play_round(trained, name, rnd, x)
    before, after = make(name).state_dict(), trained.state_dict()
    for field in fields:
        assert fingerprint(before.get(field)) != fingerprint(after[field]), field


# --- the checkpoint itself -------------------------------------------------------------


def test_checkpoint_round_trips_adapter_strategy_and_rng_and_survives_a_crash_mid_swap(tmp_path):
    from fgrpo.models.lora import fresh_adapter_model
    from fgrpo.models.transport import adapter_state

    model, _ = fresh_adapter_model(load_config(None, ["model.name=tiny-random"]).model, 0)
    adapter = {k: v + np.float32(0.1) * i for i, (k, v) in enumerate(adapter_state(model).items())}
    (tmp_path / "metrics.jsonl").write_text("")
    random.seed(5), np.random.seed(5), torch.manual_seed(5)
    strategy = {
        "control": {"w": np.arange(3, dtype=np.float32) / 7},
        "accepted": {"a": 2},
        "m": [np.ones(2)],
        "x": None,
    }
    saved = Checkpoint(
        round=2,
        adapter=adapter,
        strategy=strategy,
        rng=rng_state(),
        initial_eval={"eval": {"macro": 0.5}},
        metrics_bytes=0,
        run_id="r1",
        sessions=[1],
    )
    save_checkpoint(tmp_path, saved, model)
    draws = (random.random(), np.random.rand(), torch.rand(1).item())
    loaded = load_checkpoint(tmp_path)
    restore_rng(loaded.rng)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == draws
    assert (
        loaded.round == 2
        and loaded.run_id == "r1"
        and loaded.sessions == [1]
        and loaded.initial_eval == saved.initial_eval
    )
    assert set(loaded.adapter) == set(adapter) and all(
        np.array_equal(loaded.adapter[k], adapter[k]) for k in adapter
    )
    np.testing.assert_array_equal(loaded.strategy["control"]["w"], strategy["control"]["w"])
    assert loaded.strategy["accepted"] == {"a": 2} and loaded.strategy["x"] is None
    assert (
        tmp_path / "checkpoint" / "adapter" / "adapter_model.safetensors"
    ).is_file()  # PEFT format for export
    # A crash between the two renames of the next save: checkpoint/ gone, checkpoint.old/ complete.
    (tmp_path / "checkpoint").rename(tmp_path / "checkpoint.old")
    (tmp_path / "checkpoint.new").mkdir()  # a half-written next checkpoint is never read
    assert checkpoint_round(tmp_path) == 2 and load_checkpoint(tmp_path).run_id == "r1"


# --- client state on disk ----------------------------------------------------------------


def client_state(value: float) -> RecordDict:
    return RecordDict(
        {
            "c": ArrayRecord({"w": Array(np.asarray([value], dtype=np.float32))}),
            "n": ConfigRecord({"rounds": int(value)}),
        }
    )


def restored(store: StateStore, rnd: int) -> float | None:
    state = RecordDict()
    store.restore(state, rnd)
    return float(state["c"]["w"].numpy()[0]) if len(state) else None


def test_client_state_files_skip_rounds_a_resumed_run_redid_and_keep_two_files(tmp_path):
    first = StateStore(tmp_path, sessions=[])  # session 0
    for rnd in (1, 2, 4):
        first.save(client_state(rnd), rnd)
    assert restored(first, 1) is None and restored(first, 3) == 2.0 and restored(first, 5) == 4.0
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "round-2.session-0.state",
        "round-4.session-0.state",
    ]
    # The server crashed before checkpointing round 4; session 1 resumes after round 3.
    second = StateStore(tmp_path, sessions=[3])
    assert (
        restored(second, 4) == 2.0 and restored(second, 6) == 2.0
    )  # round 4 of session 0 is stale
    second.save(client_state(5.5), 5)
    assert restored(second, 6) == 5.5
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "round-2.session-0.state",
        "round-5.session-1.state",
    ]
    live = client_state(9)
    second.restore(live, 6)  # a client that still holds its state in memory keeps it
    assert float(live["c"]["w"].numpy()[0]) == 9.0


# --- run directories: refuse, overwrite, resume's config ----------------------------------------


def old_run(tmp_path: Path, *overrides: str) -> Path:
    run = tmp_path / "run"
    prepare(run, load_config(None, ["federation.rounds=4", *overrides]))
    (run / "final").mkdir()
    (run / "final" / "adapter.bin").write_text("old")
    return run


def test_a_non_empty_run_directory_is_refused_with_one_line(tmp_path, capsys):
    run = old_run(tmp_path)
    assert main(["run", "--out", str(run), "--set", "federation.rounds=2"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "not empty" in err and "--resume" in err and "--overwrite" in err
    assert (run / "final" / "adapter.bin").read_text() == "old"
    claim_fresh(tmp_path / "new", overwrite=False)  # missing or empty is fine
    (tmp_path / "empty").mkdir()
    claim_fresh(tmp_path / "empty", overwrite=False)


def test_overwrite_keeps_the_old_run_when_the_new_config_is_bad_and_never_deletes_other_folders(
    tmp_path, capsys
):
    run = old_run(tmp_path)
    assert main(["run", "--out", str(run), "--overwrite", "--set", "federation.rounds=zero"]) == 2
    assert (run / "final" / "adapter.bin").read_text() == "old" and (run / "config.toml").is_file()
    assert (
        main(["run", "--out", str(run), "--overwrite", "--set", "data.train_size=1"]) == 2
    )  # fails in check_data
    assert (run / "final" / "adapter.bin").read_text() == "old"
    claim_fresh(run, overwrite=True)
    clear(run)
    assert run.is_dir() and not any(run.iterdir())
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "cat.jpg").write_text("meow")
    assert main(["run", "--out", str(photos), "--overwrite"]) == 2
    assert (
        "not an fgrpo run directory" in capsys.readouterr().err and (photos / "cat.jpg").is_file()
    )


def test_overwrite_removes_only_what_fgrpo_wrote(tmp_path):
    run = old_run(tmp_path)
    (run / "notes.txt").write_text("my notes")
    (run / "my_plots").mkdir()
    (run / "my_plots" / "a.png").write_bytes(b"png")
    (run / "plots").mkdir(exist_ok=True)
    (run / "plots" / "accuracy.png").write_bytes(b"old plot")
    claim_fresh(run, overwrite=True)
    clear(run)
    assert sorted(p.name for p in run.iterdir()) == ["my_plots", "notes.txt"]
    assert (run / "notes.txt").read_text() == "my notes" and (
        run / "my_plots" / "a.png"
    ).read_bytes() == b"png"


def test_resume_takes_the_run_directorys_config_and_only_lets_rounds_grow(tmp_path, capsys):
    run = old_run(tmp_path, "strategy.name=fedavg")
    assert resume_config(run, None, []).strategy.name == "fedavg"
    assert resume_config(run, None, ["federation.rounds=6"]).federation.rounds == 6
    assert resume_config(run, str(run / "config.toml"), []).federation.rounds == 4
    assert main(["run", "--resume", str(run), "--set", "strategy.name=fgrpo"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "strategy.name" in err and "only federation.rounds may change" in err
    assert main(["run", "--resume", str(run), "--out", str(tmp_path / "x")]) == 2
    assert main(["run", "--resume", str(tmp_path / "nothing")]) == 2
    assert "no config.toml" in capsys.readouterr().err
    central = tmp_path / "central"
    prepare(central, load_config(None, ["strategy.name=centralized"]))
    assert main(["run", "--resume", str(central)]) == 2
    assert "cannot be resumed" in capsys.readouterr().err


def test_resume_refuses_fewer_rounds_than_done_and_a_finished_run_without_more_rounds(
    tmp_path, capsys
):
    from fgrpo.models.lora import fresh_adapter_model
    from fgrpo.models.transport import adapter_state

    run = old_run(tmp_path, "model.name=tiny-random")
    model, _ = fresh_adapter_model(load_config(None, ["model.name=tiny-random"]).model, 0)
    save_checkpoint(
        run, Checkpoint(round=4, adapter=adapter_state(model), strategy={}, rng=rng_state()), model
    )
    assert main(["run", "--resume", str(run), "--set", "federation.rounds=3"]) == 2
    assert "below the 4 rounds" in capsys.readouterr().err
    resume_config(run, None, [])  # all rounds done but no summary: the resume only finishes the run
    (run / "summary.json").write_text("{}")
    assert main(["run", "--resume", str(run)]) == 2
    assert "completed all 4 rounds" in capsys.readouterr().err
    assert resume_config(run, None, ["federation.rounds=5"]).federation.rounds == 5
    save_checkpoint(
        run,
        Checkpoint(
            round=4, adapter=adapter_state(model), strategy={}, rng=rng_state(), metrics_bytes=10
        ),
        model,
    )  # metrics.jsonl (empty) lost its lines
    assert main(["run", "--resume", str(run), "--set", "federation.rounds=5"]) == 2
    assert "shorter than at round 4" in capsys.readouterr().err


# --- end to end: kill after round 2 of 4, resume, compare with an uninterrupted run ---------


# The shipped tiny reasoner earns rewards with spread from round 1, so every round moves the adapter
# (and SCAFFOLD's variates); tiny-random would mostly score 0 and leave nothing to compare.
TINY = [
    "model.name=tiny",
    'data.tasks=["sorting", "addition"]',
    "data.train_size=32",
    "data.test_size=4",
    "grpo.max_completion_length=16",
    "eval.max_new_tokens=16",
    "federation.num_clients=2",
    "federation.rounds=4",
    "federation.local_steps=1",
    "grpo.per_device_train_batch_size=8",
    "grpo.num_generations=4",
]


def fgrpo_command(*args: str, overrides: list[str] = ()) -> list[str]:
    command = [sys.executable, "-m", "fgrpo", "run", *args]
    for override in overrides:
        command += ["--set", override]
    return command


def environment() -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }


def run_to_the_end(command: list[str]) -> str:
    proc = subprocess.run(
        command, capture_output=True, text=True, cwd=ROOT, env=environment(), timeout=900
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def kill_after_round(command: list[str], out: Path, rnd: int) -> None:
    """Start a run and SIGKILL its whole process group once round ``rnd`` is checkpointed."""
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        env=environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 900
    try:
        while checkpoint_round(out) != rnd:
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "timed out waiting for the checkpoint"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def deterministic_fields(out: Path) -> list[dict]:
    """metrics.jsonl without its timings: every other field must repeat exactly."""
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    for record in records:
        record.pop("seconds")
        for timing in ("train-seconds", "generate-seconds"):
            record["train"].pop(timing, None)
            for client in record["clients"]:
                client.pop(timing, None)
    return records


def assert_resume_equals_uninterrupted(strategy: str, tmp_path: Path) -> None:
    overrides = [*TINY, f"strategy.name={strategy}"]
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    run_to_the_end(fgrpo_command("--out", str(whole), overrides=overrides))
    kill_after_round(fgrpo_command("--out", str(broken), overrides=overrides), broken, 2)
    assert checkpoint_round(broken) == 2 and not (broken / "final").exists()
    stdout = run_to_the_end(fgrpo_command("--resume", str(broken)))
    assert (
        f"resuming {broken} after round 2/4" in stdout
        and "round 3/4" in stdout
        and "round 1/4" not in stdout
    )
    final_whole = load_file(str(whole / "final" / "adapter" / "adapter_model.safetensors"))
    final_resumed = load_file(str(broken / "final" / "adapter" / "adapter_model.safetensors"))
    assert set(final_whole) == set(final_resumed)
    for key in final_whole:  # bit-exact: CPU, seeded, replies aggregated in client-id order
        np.testing.assert_array_equal(final_resumed[key], final_whole[key], err_msg=key)
    records = deterministic_fields(broken)
    assert [r["round"] for r in records] == [1, 2, 3, 4]
    assert all(r["train"]["update-norm"] > 0 for r in records)  # every round trained something
    if strategy == "scaffold":  # round 3 counted the client state it had before the kill
        assert [r["train"]["client-state-rounds"] for r in records] == [1, 2, 3, 4]
    assert deterministic_fields(broken) == deterministic_fields(whole)
    summary_whole, summary_resumed = (
        json.loads((d / "summary.json").read_text()) for d in (whole, broken)
    )
    assert summary_resumed["initial_eval"] == summary_whole["initial_eval"] is not None


def test_fedavg_killed_after_round_2_of_4_and_resumed_equals_an_uninterrupted_run(tmp_path):
    assert_resume_equals_uninterrupted("fedavg", tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["fgrpo", "scaffold"])
def test_stateful_strategy_killed_after_round_2_of_4_and_resumed_equals_an_uninterrupted_run(
    strategy, tmp_path
):
    assert_resume_equals_uninterrupted(strategy, tmp_path)
