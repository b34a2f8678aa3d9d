"""Catalogue of bad inputs (issue 11): each ends in exit status 2 and ONE stderr line naming the
culprit, with no traceback, before Ray or Flower starts; destructive cases delete nothing.

Most cases run in-process through ``fgrpo.cli.main.main`` (fast); a few run ``python -m fgrpo`` as a
real subprocess to prove no traceback reaches the terminal. A safety net replaces the experiment
runner, so a bad input that slips through fails its test at once instead of starting Ray.
"""

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

ROOT = Path(__file__).resolve().parents[1]

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


# --- config: values checked before start ---------------------------------------------------------

CONFIG_CASES = {
    "unknown-key": ({"federation__roundz": 2}, "federation.roundz"),
    "grpo-generations-not-dividing-batch": ({"grpo__num_generations": 3}, "grpo.num_generations"),
    "grpo-learning-rate-text": ({"grpo__learning_rate": "fast"}, "grpo.learning_rate"),
    "grpo-unknown-field": ({"grpo__learning_rat": 0.1}, "grpo.learning_rat"),
    "grpo-temperature-zero": ({"grpo__temperature": 0}, "grpo.temperature"),
    "grpo-one-generation": ({"grpo__num_generations": 1}, "grpo.num_generations"),
    "grpo-negative-beta": ({"grpo__beta": -0.1}, "grpo.beta"),
    "grpo-float-completion-length": (
        {"grpo__max_completion_length": 1.5},
        "grpo.max_completion_length",
    ),
    "grpo-unknown-scheduler": ({"grpo__lr_scheduler_type": "bogus"}, "grpo.lr_scheduler_type"),
    "grpo-field-fgrpo-sets": ({"grpo__max_steps": 5}, "grpo.max_steps"),
    "grpo-bool-as-text": (
        {"grpo__activation_checkpointing": "yes"},
        "grpo.activation_checkpointing",
    ),
    "train-size-below-clients": ({"data__train_size": 1}, "data.train_size"),
    "client-share-below-one-step": ({"grpo__per_device_train_batch_size": 64}, "data.train_size"),
    "unknown-strategy": ({"strategy__name": "fedbest"}, "strategy.name"),
    "min-clients-above-clients": ({"federation__min_clients": 3}, "federation.min_clients"),
    "unknown-task": ({"data__tasks": ["addition", "calculus"]}, "data.tasks"),
    "rounds-zero": ({"federation__rounds": 0}, "federation.rounds"),
    "model-name-typo": ({"model__name": "tiny-randon"}, "tiny-randon"),
    "model-name-unknown-hub-id": (
        {"model__name": "no-such-org/no-such-model"},
        "no-such-org/no-such-model",
    ),
    "model-name-missing-path": ({"model__name": "./models/nope"}, "./models/nope"),
}


@pytest.mark.parametrize(
    ("overrides", "culprit"), list(CONFIG_CASES.values()), ids=list(CONFIG_CASES)
)
def test_bad_config_value(capsys, tmp_path, overrides, culprit):
    fails(capsys, ["run", *sets(**overrides), "--out", str(tmp_path / "run")], culprit)
    assert not (tmp_path / "run").exists()


def test_model_directory_without_config_json(capsys, tmp_path):
    (tmp_path / "model").mkdir()
    fails(
        capsys,
        ["run", *sets(model__name=str(tmp_path / "model")), "--out", str(tmp_path / "run")],
        str(tmp_path / "model"),
        "config.json",
    )


def test_uncached_hub_id_offline_says_so_at_once(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    line = fails(
        capsys,
        ["run", *sets(model__name="someorg/some-model"), "--out", str(tmp_path / "run")],
        "someorg/some-model",
    )
    assert "HF_HUB_OFFLINE" in line


def test_hub_id_in_the_local_cache_is_accepted(tmp_path, monkeypatch):
    """The real path for hub users still works: a cached id passes without any network."""
    from fgrpo.models.availability import check_model

    snapshot = tmp_path / "hub" / "models--someorg--cached-model" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (tmp_path / "hub" / "models--someorg--cached-model" / "refs").mkdir()
    (tmp_path / "hub" / "models--someorg--cached-model" / "refs" / "main").write_text("abc123")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    check_model("someorg/cached-model")
    with pytest.raises(UserInputError, match="someorg/other-model"):
        check_model("someorg/other-model")


@pytest.mark.parametrize(
    ("typo", "meant"),
    [("tiny-randon", "tiny-random"), ("smollm2-135", "smollm2-135m"), ("Tiny", "tiny")],
)
def test_mistyped_model_name_suggests_the_registry_name(capsys, tmp_path, typo, meant):
    """Not the hub's fault: a near-miss of a registry name is named as one at once, with the
    names."""
    line = fails(
        capsys,
        ["run", *sets(model__name=typo), "--out", str(tmp_path / "run")],
        repr(typo),
        f"did you mean {meant!r}",
    )
    assert "unreachable" not in line and "tiny-vl" in line


EMPTY_CONFIGS = {
    "empty": "",
    "only-comments": "# my run\n# rounds = 3\n",
    "only-blank-lines": "\n\n  \n",
}


@pytest.mark.parametrize("text", list(EMPTY_CONFIGS.values()), ids=list(EMPTY_CONFIGS))
def test_config_file_without_settings(capsys, tmp_path, text):
    """An empty file is a wrong or unsaved file: running 400 prompts on the defaults would hide
    that."""
    (tmp_path / "c.toml").write_text(text)
    fails(
        capsys,
        ["run", "--config", str(tmp_path / "c.toml"), "--out", str(tmp_path / "run")],
        "c.toml",
        "empty",
        "leave out --config",
    )


def test_config_file_not_utf8(capsys, tmp_path):
    (tmp_path / "c.toml").write_bytes(
        "[federation]\n# r\xe9sum\xe9\nrounds = 2\n".encode("latin-1")
    )
    fails(capsys, ["run", "--config", str(tmp_path / "c.toml")], "c.toml", "UTF-8")


def test_more_clients_than_rows(capsys, tmp_path):
    rows = [
        {"question": f"What is {a} + {a}?", "answer": f"#### {2 * a}"} for a in range(1, 51)
    ]  # 2 go to tests
    argv = source_run(tmp_path, {"path": jsonl(tmp_path, rows)}, federation__num_clients=100)
    fails(
        capsys, argv, "federation.num_clients", "48 training rows cannot be split among 100 clients"
    )


def test_config_file_missing(capsys, tmp_path):
    fails(capsys, ["run", "--config", str(tmp_path / "nope.toml")], "--config", "nope.toml")


def test_config_file_not_toml(capsys, tmp_path):
    (tmp_path / "c.toml").write_text("[federation\nrounds = 2\n")
    fails(capsys, ["run", "--config", str(tmp_path / "c.toml")], "c.toml", "invalid TOML")


# --- data: a data owner's files -----------------------------------------------------------------

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


def csv_file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "data.csv"
    path.write_text(text)
    return str(path)


def raw_file(tmp_path: Path, name: str, bad: bytes, at_line: int, text: str = "") -> str:
    """A data file of GOOD_ROWS (or ``text``) whose line ``at_line`` (1-based) carries the bytes
    ``bad``."""
    path = tmp_path / name
    if text:
        path.write_text(text)
        return str(path)
    if name.endswith(".csv"):
        lines = ["question,answer"] + [
            f"{r['question']},#### {r['answer'].split('#### ')[1]}" for r in GOOD_ROWS
        ]
    elif name.endswith(".json"):
        lines = (
            ["["] + [json.dumps(r) + "," for r in GOOD_ROWS[:-1]] + [json.dumps(GOOD_ROWS[-1]), "]"]
        )
    else:
        lines = [json.dumps(r) for r in GOOD_ROWS]
    data = [line.encode() for line in lines]
    data[at_line - 1] = data[at_line - 1].replace(b"What", b"What" + bad)
    path.write_bytes(b"\n".join(data) + b"\n")
    return str(path)


DATA_CASES = {
    "missing-file": (lambda t: {"path": str(t / "nope.jsonl")}, "nope.jsonl"),
    "missing-test-file": (
        lambda t: {"path": jsonl(t, GOOD_ROWS), "test_path": str(t / "test.jsonl")},
        "test.jsonl",
    ),
    "unsupported-file-type": (
        lambda t: {"path": str(Path(jsonl(t, GOOD_ROWS)).rename(t / "data.txt"))},
        ".txt",
    ),
    "invalid-json-line": (
        lambda t: {"path": jsonl(t, [*GOOD_ROWS[:3], "{not json", *GOOD_ROWS[3:]])},
        "line 4",
    ),
    "json-line-not-an-object": (lambda t: {"path": jsonl(t, [*GOOD_ROWS, [1, 2]])}, "line 25"),
    "missing-prompt-column": (
        lambda t: {"path": jsonl(t, GOOD_ROWS), "prompt_column": "problem"},
        "'problem'",
    ),
    "csv-missing-answer-column": (
        lambda t: {
            "path": csv_file(t, "question,solution\nWhat is 1+1?,#### 2\nWhat is 2+2?,#### 4\n")
        },
        "'answer'",
    ),
    "empty-prompt": (
        lambda t: {"path": jsonl(t, [*GOOD_ROWS, {"question": " ", "answer": "#### 3"}])},
        "empty prompt",
    ),
    "unparseable-answer": (
        lambda t: {"path": jsonl(t, [*GOOD_ROWS, {"question": "q?", "answer": "three"}])},
        "cannot be parsed",
    ),
    "reserved-column": (
        lambda t: {"path": jsonl(t, [{**r, "task": "x"} for r in GOOD_ROWS])},
        "'task'",
    ),
    "directory-without-train-file": (lambda t: {"path": str(t)}, "no train"),
    "every-row-bad-skipped": (
        lambda t: {
            "path": jsonl(t, [{"question": "q", "answer": "none"}] * 5),
            "on_bad_rows": "skip",
        },
        "no usable training rows",
    ),
    "path-and-hub": (
        lambda t: {"path": jsonl(t, GOOD_ROWS), "hub": "openai/gsm8k"},
        "data.sources[0]",
    ),
    "source-named-like-a-task": (
        lambda t: {"path": jsonl(t, GOOD_ROWS), "name": "addition"},
        "built-in task",
    ),
    "non-utf8-byte-in-jsonl": (
        lambda t: {"path": raw_file(t, "data.jsonl", b"\xff", at_line=3)},
        "line 3",
        "UTF-8",
    ),
    "non-utf8-byte-in-csv": (
        lambda t: {"path": raw_file(t, "data.csv", "caf\xe9".encode("latin-1"), at_line=5)},
        "line 5",
        "0xe9",
    ),
    "non-utf8-byte-in-json": (
        lambda t: {"path": raw_file(t, "data.json", b"\xfe", at_line=2)},
        "line 2",
        "UTF-8",
    ),
    "column-missing-from-every-row": (
        lambda t: {
            "path": jsonl(t, [{"q": r["question"], "answer": r["answer"]} for r in GOOD_ROWS])
        },
        "line 1",
        "'question'",
    ),
    "column-missing-from-row-7-on": (
        lambda t: {
            "path": jsonl(
                t, [r if i < 6 else {"question": r["question"]} for i, r in enumerate(GOOD_ROWS)]
            )
        },
        "line 7",
        "'answer'",
    ),
    "empty-prompt-named-by-line": (
        lambda t: {
            "path": jsonl(t, [*GOOD_ROWS[:9], {"question": "", "answer": "#### 1"}, *GOOD_ROWS[9:]])
        },
        "line 10",
        "empty prompt",
    ),
    "csv-empty-prompt-cell": (
        lambda t: {"path": csv_file(t, "question,answer\nWhat is 1+1?,#### 2\n,#### 4\n")},
        "row 2 (line 3)",
        "empty prompt",
    ),
    "null-answer": (
        lambda t: {"path": jsonl(t, [*GOOD_ROWS, {"question": "q?", "answer": None}])},
        "line 25",
        "empty answer",
    ),
    "prompt-is-a-number": (
        lambda t: {
            "path": jsonl(t, [*GOOD_ROWS[:2], {"question": 7, "answer": "#### 7"}, *GOOD_ROWS[2:]])
        },
        "line 3",
        "text or a list of chat messages",
    ),
    "chat-messages-without-roles": (
        lambda t: {"path": jsonl(t, [{"question": [{"content": "hi"}], "answer": "#### 1"}])},
        "line 1",
        "chat messages",
    ),
    "json-file-of-one-object": (
        lambda t: {"path": raw_file(t, "data.json", b"", at_line=0, text='{"a": 1}')},
        "JSON array",
    ),
    "empty-data-file": (
        lambda t: {"path": raw_file(t, "data.jsonl", b"", at_line=0, text="\n\n")},
        "no usable training rows",
    ),
    "columns-copies-a-missing-column": (
        lambda t: {"path": jsonl(t, GOOD_ROWS), "columns": {"solution": "sol"}},
        "line 1",
        "'sol'",
    ),
    "reward-max-not-above-min": (
        lambda t: {"path": jsonl(t, GOOD_ROWS), "reward_min": 1.0, "reward_max": 1.0},
        "reward_max",
    ),
}


@pytest.mark.parametrize(
    ("make", "culprits"), [(c[0], c[1:]) for c in DATA_CASES.values()], ids=list(DATA_CASES)
)
def test_bad_data(capsys, tmp_path, make, culprits):
    fails(capsys, source_run(tmp_path, make(tmp_path)), *culprits)
    assert not (tmp_path / "run").exists()


def test_test_share_that_takes_every_row_says_so(capsys, tmp_path):
    """6 rows and the default data.test_size (200): the carve-out took them all, which is what to
    say."""
    argv = source_run(tmp_path, {"path": jsonl(tmp_path, GOOD_ROWS[:6])}, data__test_size=200)
    line = fails(capsys, argv, "data.jsonl", "all 6 usable rows", "test_size = 200", "test_size")
    assert "below 6" in line


def test_csv_with_a_byte_order_mark_reads_its_header(tmp_path):
    """Spreadsheets save UTF-8 CSV with a BOM; the first column must still be called 'question'."""
    from fgrpo.core.config import SourceConfig
    from fgrpo.tasks.sources import load_source

    path = tmp_path / "data.csv"
    path.write_bytes(
        "\ufeffquestion,answer\n".encode()
        + "".join(
            f"{r['question']},#### {r['answer'].split('#### ')[1]}\n" for r in GOOD_ROWS
        ).encode()
    )
    train, _ = load_source(
        SourceConfig(name="mine", path=str(path), prompt_column="question", answer_format="gsm8k"),
        0,
        2,
    )
    assert len(train) == len(GOOD_ROWS) - 2


# --- reward functions: probed with gold, empty and malformed completions -------------------------

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

REWARD_CASES = {
    "raises-on-malformed-completion": ("parses_a_number", "ValueError"),
    "raises-always": ("always_raises", "KeyError"),
    "nan-on-empty-completion": ("nan_on_empty", "nan"),
    "infinite": ("inf_reward", "inf"),
    "wrong-length": ("one_short", "values for"),
    "strings": ("strings", "'good'"),
    "scalar-not-a-list": ("one_number", "float"),
    "not-callable": ("NOT_A_FUNCTION", "not callable"),
    "missing-function": ("no_such_function", "no attribute"),
    "above-declared-range": ("above_range", "reward 7 for the gold answer"),
    "below-declared-range": ("below_range", "outside the task's declared range [0, 1]"),
    "none-for-every-completion": ("never_scores", "None for every completion"),
    "raises-on-a-real-step-batch": ("small_batches_only", "batch of 4"),
}


@pytest.mark.parametrize(
    ("function", "problem"), list(REWARD_CASES.values()), ids=list(REWARD_CASES)
)
def test_bad_reward_function(capsys, tmp_path, function, problem):
    (tmp_path / "my_rewards.py").write_text(REWARD_MODULE)
    spec = f"{tmp_path / 'my_rewards.py'}:{function}"
    fails(
        capsys,
        source_run(tmp_path, {"path": jsonl(tmp_path, GOOD_ROWS), "rewards": [spec]}),
        function,
        problem,
    )
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "spec",
    ["no_such_module_xyz:score", "rewards_file_that_is_not_there.py:score", "no-colon"],
    ids=["missing-module", "missing-file", "malformed-path"],
)
def test_reward_import_path_that_does_not_import(capsys, tmp_path, spec):
    fails(
        capsys,
        source_run(tmp_path, {"path": jsonl(tmp_path, GOOD_ROWS), "rewards": [spec]}),
        "data.sources[0].rewards[0]",
        spec,
    )


def test_reward_module_that_raises_on_import(capsys, tmp_path):
    (tmp_path / "broken.py").write_text("raise RuntimeError('needs a GPU')\n")
    fails(
        capsys,
        source_run(
            tmp_path, {"path": jsonl(tmp_path, GOOD_ROWS), "rewards": [f"{tmp_path}/broken.py:f"]}
        ),
        "broken.py",
        "needs a GPU",
    )


def test_reward_returning_none_for_some_rows_passes_the_probe(tmp_path):
    """The probe must not reject legitimate functions: None is TRL's 'not mine to score'."""
    from fgrpo.runtime.configs import load_config
    from fgrpo.runtime.preflight import check_run

    (tmp_path / "my_rewards.py").write_text(REWARD_MODULE)
    argv = source_run(
        tmp_path,
        {"path": jsonl(tmp_path, GOOD_ROWS), "rewards": [f"{tmp_path}/my_rewards.py:skips_some"]},
    )
    check_run(load_config(argv[2]), tmp_path / "run")
    assert not (tmp_path / "run").exists()  # the checks create nothing


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
