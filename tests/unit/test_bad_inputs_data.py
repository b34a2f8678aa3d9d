"""Bad data-source files and bad reward functions: exit 2 and one stderr line naming the file and
line, or the function, before Ray or Flower starts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ..bad_input_helpers import (
    GOOD_ROWS,
    REWARD_MODULE,
    fails,
    jsonl,
    nothing_starts,  # noqa: F401 (the autouse safety net)
    source_run,
)

# --- data: a data owner's files -----------------------------------------------------------------


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
