"""Paths in a config resolve against the folder of the file that names them (``--set`` against the
current directory), and the run's config.toml stores them absolute: resume, export and eval work
from any directory, and export needs neither the data nor the reward file any more."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from fgrpo.cli.main import main
from fgrpo.runtime.configs import load_config

from ..data_helpers import gsm8k_rows, write_jsonl

CONFIG = """
[model]
name = "tiny-random"
[federation]
num_clients = 1
min_clients = 1
rounds = 1
local_steps = 1
[strategy]
name = "fedavg"
[data]
tasks = []
test_size = 2
[[data.sources]]
name = "apples"
path = "problems.jsonl"
test_path = "held_out/test.jsonl"
prompt_column = "question"
answer_column = "answer"
answer_format = "gsm8k"
rewards = ["my_rewards.py:longer"]
train_size = 8
[eval]
max_new_tokens = 8
[grpo]
per_device_train_batch_size = 4
num_generations = 4
max_completion_length = 8
"""
REWARDS = "def longer(completions, **kwargs):\n    return [min(1.0, len(str(c)) / 100) for c in completions]\n"


def project(folder: Path) -> Path:
    """A user's folder A: a config naming its data and reward file relative to itself."""
    folder.mkdir()
    write_jsonl(folder / "problems.jsonl", gsm8k_rows(12))
    write_jsonl(folder / "held_out" / "test.jsonl", gsm8k_rows(4, seed=1))
    (folder / "my_rewards.py").write_text(REWARDS)
    (folder / "config.toml").write_text(CONFIG)
    return folder / "config.toml"


def test_a_configs_paths_resolve_against_its_folder_and_set_overrides_against_the_current_one(
    tmp_path, monkeypatch
):
    config = project(tmp_path / "a")
    elsewhere = tmp_path / "b"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    source = load_config(config).data.sources[0]
    a = config.parent.resolve()
    assert (source.path, source.test_path) == (
        str(a / "problems.jsonl"),
        str(a / "held_out" / "test.jsonl"),
    )
    assert source.rewards == [f"{a / 'my_rewards.py'}:longer"]
    write_jsonl(elsewhere / "mine.jsonl", gsm8k_rows(3))
    assert load_config(config, ["output.dir=out"]).output.dir == str(elsewhere.resolve() / "out")
    (config.parent / "models" / "mine").mkdir(
        parents=True
    )  # a local model directory, named as a path
    assert load_config(config, ["model.name=../a/models/mine"]).model.name == str(
        a / "models" / "mine"
    )
    assert (
        load_config(config, ["model.name=org/hub-model"]).model.name == "org/hub-model"
    )  # a hub id stays
    sources = '[{name = "mine", path = "mine.jsonl", prompt_column = "question"}]'
    assert load_config(config, [f"data.sources={sources}"]).data.sources[0].path == str(
        elsewhere.resolve() / "mine.jsonl"
    )


def test_run_made_with_relative_paths_resumes_and_exports_from_another_directory(
    tmp_path, monkeypatch, capsys
):
    config = project(tmp_path / "a")
    for folder in ("b", "c"):
        (tmp_path / folder).mkdir()
    monkeypatch.chdir(tmp_path / "b")  # neither the config's folder nor the run's
    assert main(["run", "--config", str(config), "--out", "run"]) == 0, capsys.readouterr().err
    run = (tmp_path / "b" / "run").resolve()
    stored = tomllib.loads((run / "config.toml").read_text())
    source = stored["data"]["sources"][0]
    assert Path(source["path"]).is_absolute() and Path(source["test_path"]).is_absolute()
    assert Path(source["rewards"][0].split(":")[0]).is_absolute() and stored["output"][
        "dir"
    ] == str(run)

    monkeypatch.chdir(tmp_path / "c")
    assert main(["run", "--resume", str(run), "--set", "federation.rounds=2", "--dry-run"]) == 0, (
        capsys.readouterr().err
    )
    assert main(["eval", "--config", str(run / "config.toml")]) == 0, capsys.readouterr().err
    for gone in ("problems.jsonl", "my_rewards.py", "held_out/test.jsonl"):
        (config.parent / gone).unlink()  # export reads the run, never its data
    assert main(["export", str(run), "--out", "exported"]) == 0, capsys.readouterr().err
    assert (tmp_path / "c" / "exported" / "adapter_config.json").is_file()
    capsys.readouterr()  # export's own progress output
    assert main(["run", "--resume", str(run), "--set", "federation.rounds=2", "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        "\n" not in err and "problems.jsonl" in err
    )  # resuming does need the data: one line says so


@pytest.mark.parametrize("name", ["problems.jsonl", "held_out/test.jsonl"])
def test_a_missing_file_is_named_by_its_resolved_path_in_one_line(
    tmp_path, monkeypatch, capsys, name
):
    config = project(tmp_path / "a")
    (config.parent / name).unlink()
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--config", str(config), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and str(config.parent.resolve() / name) in err
