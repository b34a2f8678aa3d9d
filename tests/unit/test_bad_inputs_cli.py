"""Bad paths for run --out, export and eval (which delete nothing), --debug, and real `python -m
fgrpo` subprocesses that print one line and no traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import tomli_w

from fgrpo.cli.main import main
from fgrpo.core.config import Config
from fgrpo.core.errors import UserInputError

from ..bad_input_helpers import (
    GOOD_ROWS,
    REWARD_MODULE,
    fails,
    jsonl,
    nothing_starts,  # noqa: F401 (the autouse safety net)
    sets,
    source_run,
    tree_of,
)

ROOT = Path(__file__).resolve().parents[2]


# --- CLI paths: run --out, export, eval ----------------------------------------------------------


def test_run_out_is_an_existing_file(capsys, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    fails(capsys, ["run", *sets(), "--out", str(tmp_path / "notes.txt")], "notes.txt", "is a file")
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_run_out_under_a_file(capsys, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    fails(capsys, ["run", *sets(), "--out", str(tmp_path / "notes.txt" / "run")], "notes.txt")


def test_run_out_unwritable(capsys):
    # /sys refuses new directories even to root, unlike a chmod'ed folder
    fails(capsys, ["run", *sets(), "--out", "/sys/fgrpo-run"], "/sys/fgrpo-run", "cannot write")


def fake_run_dir(root: Path) -> Path:
    """A run directory's shape: config.toml and final/adapter (never loaded: every case fails
    first)."""
    cfg = Config()
    cfg.model.name = "tiny-random"
    root.mkdir(parents=True)
    (root / "config.toml").write_text(tomli_w.dumps(cfg.to_dict()))
    (root / "metrics.jsonl").write_text('{"round": 1}\n')
    adapter = root / "final" / "adapter"
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 8}))
    (adapter / "adapter_model.safetensors").write_bytes(b"weights")
    return root


def test_export_out_is_the_run_directory(capsys, tmp_path):
    run = fake_run_dir(tmp_path / "run")
    before = tree_of(run)
    fails(capsys, ["export", str(run), "--out", str(run)], "is the run directory")
    assert tree_of(run) == before


def test_export_out_contains_the_run(capsys, tmp_path):
    run = fake_run_dir(tmp_path / "runs" / "demo")
    before = tree_of(tmp_path)
    fails(
        capsys, ["export", str(run), "--out", str(tmp_path / "runs")], "contains the run directory"
    )
    assert tree_of(tmp_path) == before


def test_export_out_is_a_users_folder(capsys, tmp_path):
    run = fake_run_dir(tmp_path / "run")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("years of work")
    fails(capsys, ["export", str(run), "--out", str(tmp_path / "mine")], "not empty")
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "years of work"


def test_export_out_inside_the_run_needs_force(capsys, tmp_path):
    run = fake_run_dir(tmp_path / "run")
    before = tree_of(run)
    fails(
        capsys,
        ["export", str(run), "--out", str(run / "exported")],
        "inside the run directory",
        "--force",
    )
    assert tree_of(run) == before


def test_export_out_is_a_file(capsys, tmp_path):
    run = fake_run_dir(tmp_path / "run")
    (tmp_path / "adapter.bin").write_text("mine")
    fails(
        capsys,
        ["export", str(run), "--out", str(tmp_path / "adapter.bin")],
        "adapter.bin",
        "is a file",
    )
    assert (tmp_path / "adapter.bin").read_text() == "mine"


def test_export_of_a_missing_run(capsys, tmp_path):
    fails(
        capsys,
        ["export", str(tmp_path / "no-run"), "--out", str(tmp_path / "out")],
        "no-run",
        "does not exist",
    )


def test_export_of_a_directory_that_is_not_a_run(capsys, tmp_path):
    (tmp_path / "photos").mkdir()
    fails(
        capsys,
        ["export", str(tmp_path / "photos"), "--out", str(tmp_path / "out")],
        "photos",
        "final/adapter",
    )


def test_export_of_a_run_without_config(capsys, tmp_path):
    run = fake_run_dir(tmp_path / "run")
    (run / "config.toml").unlink()
    fails(capsys, ["export", str(run), "--out", str(tmp_path / "out")], "config.toml")


def adapter_dir(root: Path, config: str | None, weights: bool) -> Path:
    root.mkdir()
    if config is not None:
        (root / "adapter_config.json").write_text(config)
    if weights:
        (root / "adapter_model.safetensors").write_bytes(b"weights")
    return root


EVAL_ADAPTER_CASES = {
    "empty-config": (("{}", True), "peft_type"),
    "no-weights": (('{"peft_type": "LORA"}', False), "no adapter weights"),
    "no-config": ((None, True), "adapter_config.json"),
    "config-not-json": (("{peft", True), "not valid JSON"),
}


@pytest.mark.parametrize(
    ("shape", "problem"), list(EVAL_ADAPTER_CASES.values()), ids=list(EVAL_ADAPTER_CASES)
)
def test_eval_adapter_that_is_not_an_adapter(capsys, tmp_path, shape, problem):
    adapter = adapter_dir(tmp_path / "adapter", *shape)
    fails(
        capsys, ["eval", "--model", "tiny-random", "--adapter", str(adapter)], "--adapter", problem
    )


def test_eval_adapter_missing(capsys, tmp_path):
    fails(
        capsys,
        ["eval", "--model", "tiny-random", "--adapter", str(tmp_path / "gone")],
        "gone",
        "no such directory",
    )


def test_eval_model_that_does_not_exist(capsys):
    fails(capsys, ["eval", "--model", "tiny-randon"], "--model", "tiny-randon")


def test_eval_exported_adapter_of_another_base(capsys, tmp_path):
    """fgrpo_export.json says which base the adapter was trained on: refused before any loading."""
    adapter = adapter_dir(tmp_path / "adapter", '{"peft_type": "LORA"}', True)
    (adapter / "fgrpo_export.json").write_text(
        json.dumps({"base_model": "smollm2-135m", "merged": False})
    )
    fails(
        capsys,
        ["eval", "--model", "tiny-random", "--adapter", str(adapter)],
        "--adapter",
        "'smollm2-135m'",
        "--model smollm2-135m",
    )


def test_eval_adapter_shaped_for_another_base(capsys, tmp_path, monkeypatch):
    """A run's own adapter (no export record) on a base of another width: one line, not
    transformers'
    ``size mismatch for ...lora_B`` traceback."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from fgrpo.models.registry import load_base
    from fgrpo.models.tiny_model import tiny_architecture

    model, tokenizer = load_base("tiny-random")
    get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"])).save_pretrained(
        tmp_path / "adapter"
    )
    wider = AutoModelForCausalLM.from_config(
        tiny_architecture(model.config.vocab_size, hidden_size=64, layers=1)
    )
    wider.save_pretrained(tmp_path / "base")
    tokenizer.save_pretrained(tmp_path / "base")
    capsys.readouterr()  # the setup's own progress bars
    monkeypatch.setattr(
        "transformers.utils.logging._tqdm_active", False
    )  # the load's bar is not the error
    fails(
        capsys,
        [
            "eval",
            "--model",
            str(tmp_path / "base"),
            "--adapter",
            str(tmp_path / "adapter"),
            "--set",
            'data.tasks=["addition"]',
            "--set",
            "data.test_size=2",
        ],
        "--adapter",
        "does not fit",
    )


def test_eval_prints_binomial_standard_errors(capsys, tmp_path):
    """Accuracies without their noise invite reading 0.25 vs 0.50 on 4 prompts as progress."""
    import math

    argv = [
        "eval",
        "--model",
        "tiny-random",
        "--set",
        'data.tasks=["addition"]',
        "--set",
        "data.test_size=4",
        "--set",
        "eval.max_new_tokens=4",
        "--json",
        str(tmp_path / "acc.json"),
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    result = json.loads((tmp_path / "acc.json").read_text())
    p = result["accuracy"]["addition"]
    assert result["accuracy_se"]["addition"] == pytest.approx(math.sqrt(p * (1 - p) / 4))
    assert f"± {math.sqrt(p * (1 - p) / 4):.3f}" in out and "standard error" in out


def test_build_tiny_model_refuses_a_users_folder(capsys, tmp_path):
    (tmp_path / "mine.txt").write_text("mine")
    fails(capsys, ["build-tiny-model", "--out", str(tmp_path)], "refusing to overwrite")
    assert (tmp_path / "mine.txt").read_text() == "mine"


# --- --debug and real subprocesses ----------------------------------------------------------------


def test_debug_shows_the_traceback_anywhere_on_the_line(tmp_path):
    for argv in (
        ["--debug", "run", *sets(grpo__learning_rate="fast")],
        ["run", *sets(grpo__learning_rate="fast"), "--debug"],
    ):
        with pytest.raises(UserInputError, match="grpo.learning_rate"):
            main([*argv, "--out", str(tmp_path / "run")])


def test_unexpected_errors_still_show_a_traceback(monkeypatch):
    """A bug is not a user error: main() must not swallow it into one line."""

    def broken(_args):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr("fgrpo.cli.strategies.cmd_strategies", broken)
    with pytest.raises(ZeroDivisionError):
        main(["strategies"])


def run_cli(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    return subprocess.run(
        [sys.executable, "-m", "fgrpo", *argv],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
    )


def test_subprocess_bad_reward_is_one_line(tmp_path):
    (tmp_path / "my_rewards.py").write_text(REWARD_MODULE)
    argv = source_run(
        tmp_path, {"path": jsonl(tmp_path, GOOD_ROWS), "rewards": ["my_rewards:parses_a_number"]}
    )
    proc = run_cli(
        argv, cwd=tmp_path
    )  # the module imports from the current directory, as for a user
    assert proc.returncode == 2, proc.stderr
    assert (
        proc.stderr.strip().splitlines() == [proc.stderr.strip()] and "Traceback" not in proc.stderr
    )
    assert "my_rewards:parses_a_number" in proc.stderr and "empty completion" in proc.stderr
    assert not (tmp_path / "run").exists()


def test_subprocess_export_onto_the_run_deletes_nothing(tmp_path):
    run = fake_run_dir(tmp_path / "run")
    before = tree_of(run)
    proc = run_cli(["export", str(run), "--out", str(run)], cwd=tmp_path)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "run directory" in proc.stderr
    assert tree_of(run) == before


def test_subprocess_missing_model_fails_fast(tmp_path):
    proc = run_cli(
        ["run", *sets(model__name="no-such-org/no-such-model"), "--out", str(tmp_path / "run")],
        cwd=ROOT,
    )
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "no-such-org/no-such-model" in proc.stderr


IN_ROUND_REWARD = '''
def fails_on_what_the_model_writes(completions, **kwargs):
    """Scores the pre-flight's probes (the gold answer, empty and malformed text); raises on real text."""
    texts = [c[0]["content"] for c in completions]
    if any(t and "\\x00" not in t and not t.strip().lstrip("-").isdigit() for t in texts):
        raise ValueError("cannot score free text")
    return [0.0] * len(texts)
'''


def test_subprocess_reward_failing_inside_a_round_is_named_on_the_console(tmp_path):
    (tmp_path / "round_rewards.py").write_text(IN_ROUND_REWARD)
    argv = source_run(
        tmp_path,
        {
            "path": jsonl(tmp_path, GOOD_ROWS),
            "rewards": ["round_rewards:fails_on_what_the_model_writes"],
            "answer_format": "gsm8k",
        },
        federation__rounds=1,
        federation__local_steps=1,
        eval__every=0,
        data__probe_size=0,
        strategy__name="fedavg",
        grpo__max_completion_length=8,
    )
    proc = run_cli(argv, cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("fgrpo: no round aggregated an update") and "Traceback" not in last
    assert (
        "round_rewards:fails_on_what_the_model_writes" in last and "cannot score free text" in last
    )


def test_a_reader_that_leaves_early_gets_no_traceback():
    read, write = os.pipe()
    os.close(read)  # `fgrpo tasks | head -0`: the reader is gone before the first line
    try:
        done = subprocess.run(
            [sys.executable, "-m", "fgrpo", "tasks"],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    finally:
        os.close(write)
    assert done.returncode == 141 and "Traceback" not in done.stderr, done.stderr
