"""Shared by the catalogue of bad inputs: each ends in exit status 2 and ONE stderr line
naming the culprit, with no traceback, before Ray or Flower starts; destructive cases delete
nothing.

Most cases run in-process through ``fgrpo.cli.main.main`` (fast); a few run ``python -m fgrpo`` as a
real subprocess to prove no traceback reaches the terminal. A safety net (``nothing_starts``, which
every bad-input module imports) replaces the experiment runner, so a bad input that slips through
fails its test at once instead of starting Ray.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tomli_w

from fgrpo.cli.main import main

# A small valid run: tiny-random model, one procedural task, 2 clients, 2 prompts per GRPO step.
SMALL = {
    "model.name": "tiny-random",
    "federation.num_clients": 2,
    "data.partition": "iid",
    "data.tasks": ["addition"],
    "data.train_size": 40,
    "data.test_size": 4,
    "grpo.per_device_train_batch_size": 4,
    "grpo.num_generations": 2,
}


def sets(**overrides: object) -> list[str]:
    """``--set`` arguments for SMALL plus overrides (dotted keys spelled with __)."""
    merged = {**SMALL, **{k.replace("__", "."): v for k, v in overrides.items()}}
    return [
        arg for key, value in merged.items() for arg in ("--set", f"{key}={json.dumps(value)}")
    ]  # JSON is TOML here


@pytest.fixture(autouse=True)
def nothing_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    def started(*_: object, **__: object) -> None:
        raise AssertionError("the run started: the bad input was not caught before Ray/Flower")

    monkeypatch.setattr("fgrpo.runtime.runner.run_experiment", started)


def fails(capsys: pytest.CaptureFixture[str], argv: list[str], *culprits: str) -> str:
    """Run the CLI in-process; assert exit 2 and one stderr line naming every culprit."""
    code = main(argv)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("fgrpo: "), err
    assert "Traceback" not in err
    for culprit in culprits:
        assert culprit in lines[0], lines[0]
    return lines[0]


def tree_of(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its bytes: compared before and after to prove nothing was
    deleted."""
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


GOOD_ROWS = [
    {
        "question": f"What is {a} + {a + 1}?",
        "answer": f"{a} + {a + 1} = {2 * a + 1}\n#### {2 * a + 1}",
    }
    for a in range(1, 25)
]


def source_run(tmp_path: Path, source: dict, **overrides: object) -> list[str]:
    """A run over one data source (no procedural tasks), written as a config file."""
    tree: dict = {
        "model": {"name": "tiny-random"},
        "federation": {"num_clients": 2},
        "data": {
            "tasks": [],
            "partition": "iid",
            "test_size": 2,
            "sources": [
                {"name": "mine", "prompt_column": "question", "answer_format": "gsm8k", **source}
            ],
        },
        "grpo": {"per_device_train_batch_size": 4, "num_generations": 2},
    }
    for key, value in overrides.items():
        section, name = key.split("__")
        tree.setdefault(section, {})[name] = value
    (tmp_path / "run.toml").write_text(tomli_w.dumps(tree))
    return ["run", "--config", str(tmp_path / "run.toml"), "--out", str(tmp_path / "run")]


def jsonl(tmp_path: Path, rows: list, name: str = "data.jsonl") -> str:
    path = tmp_path / name
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return str(path)


REWARD_MODULE = """
import math

def parses_a_number(completions, **kwargs):  # fine on the gold answer, raises on anything else
    return [float(c[0]["content"]) for c in completions]

def always_raises(completions, **kwargs):
    raise KeyError("score")

def nan_on_empty(completions, **kwargs):
    return [math.nan if not c[0]["content"] else 1.0 for c in completions]

def inf_reward(completions, **kwargs):
    return [math.inf] * len(completions)

def one_short(completions, **kwargs):
    return [1.0] * (len(completions) - 1)

def strings(completions, **kwargs):
    return ["good"] * len(completions)

def one_number(completions, **kwargs):
    return 1.0

def skips_some(completions, answer, **kwargs):  # legitimate: None skips a sample (TRL allows it)
    return [None if i % 2 else 1.0 for i, _ in enumerate(completions)]

def above_range(completions, **kwargs):  # declared [0, 1] (the default), gives 7 for the gold answer
    return [7.0 if c[0]["content"].strip() else 0.0 for c in completions]

def below_range(completions, **kwargs):
    return [-1.0 if not c[0]["content"] else 1.0 for c in completions]

def never_scores(completions, **kwargs):
    return [None] * len(completions)

def small_batches_only(completions, **kwargs):  # fine on 1-3 completions, breaks on a real step's batch
    if len(completions) > 3:
        raise MemoryError("batch of %d" % len(completions))
    return [1.0] * len(completions)

NOT_A_FUNCTION = 3
"""
