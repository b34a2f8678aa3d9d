"""Real math datasets (answer parsing, checkers, TRL rewards) and loading bring-your-own sources
from files, directories and the hub."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from fgrpo.data import partitions as fdata
from fgrpo.data.partitions import training_pool
from fgrpo.tasks.math_datasets import (
    CHECKERS,
    answer_accuracy,
    boxed_accuracy,
    gold_from_answer,
    gsm8k_accuracy,
    parse_gold,
)
from fgrpo.tasks.sources import load_source

from ..data_helpers import SHARED_GSM8K, gsm8k_dir, gsm8k_rows, write_jsonl
from ..source_helpers import config, source

# --- math datasets --------------------------------------------------------------------------


def test_gold_from_answer_formats() -> None:
    assert gold_from_answer("so 3+4=7\n#### 7") == "7"
    assert gold_from_answer("#### 1,234") == "1234"
    assert gold_from_answer("#### -5", "gsm8k") == "-5"
    assert gold_from_answer(r"hence $\boxed{\frac{1}{2}}$.") == r"\frac{1}{2}"
    assert gold_from_answer(r"\frac{\pi}{4}", "plain") == r"\frac{\pi}{4}"
    assert gold_from_answer("no marker", "gsm8k") is None
    assert gold_from_answer("no box", "boxed") is None
    assert gold_from_answer("   ", "plain") is None


@pytest.mark.parametrize(
    ("completion", "gold", "right"),
    [
        ("The answer is 18.", "18", True),
        ("Reasoning 3+4=7 ... #### 18", "18", True),
        (r"So \boxed{18}", "18", True),
        ("$18$", "18", True),
        ("<answer>18</answer>", "18", True),
        ("18.0", "18", True),
        ("It is 19", "18", False),
        ("-18", "18", False),
        ("no answer", "18", False),
        (r"\boxed{\frac{1}{2}}", "0.5", True),
        (r"\boxed{0.5}", r"\frac{1}{2}", True),
        (r"\boxed{\frac{\pi}{4}}", r"\frac{\pi}{4}", True),
        (r"\boxed{\frac{\pi}{3}}", r"\frac{\pi}{4}", False),
    ],
)
def test_math_checker(completion: str, gold: str, right: bool) -> None:
    assert CHECKERS["math"].is_correct(completion, gold) is right
    assert CHECKERS["math"].score(completion, gold) == (1.0 if right else 0.0)


def test_exact_checker() -> None:
    assert CHECKERS["exact"].score("<answer> Paris. </answer>", "paris") == 1.0
    assert CHECKERS["exact"].score("<answer>Lyon</answer>", "paris") == 0.0


def test_builtin_trl_rewards_on_dataset_columns() -> None:
    assert gsm8k_accuracy(
        completions=["#### 7", "8", "x"], answer=["3+4\n#### 7", "#### 7", "no marker"]
    ) == [1.0, 0.0, None]
    sol = [r"so $\boxed{4}$", "unparseable solution"]
    assert boxed_accuracy(completions=[r"\boxed{4}", "4"], solution=sol) == [1.0, None]
    assert answer_accuracy(
        completions=[[{"role": "assistant", "content": r"\boxed{\sqrt{2}}"}]], answer=[r"\sqrt{2}"]
    ) == [1.0]


@pytest.mark.skipif(not (SHARED_GSM8K / "test.jsonl").is_file(), reason="no ../shared/data/gsm8k")
def test_shared_gsm8k_test_answers_all_parse_and_score() -> None:
    rows = [
        json.loads(line)
        for line in (SHARED_GSM8K / "test.jsonl").read_text().splitlines()
        if line.strip()
    ]
    assert len(rows) == 1319
    math_check = CHECKERS["math"]
    for row in rows:
        gold = gold_from_answer(row["answer"], "gsm8k")
        assert gold is not None and parse_gold(gold), row["answer"]
        assert math_check.score(row["answer"], gold) == 1.0  # the gold solution itself
        wrong = int(float(gold)) + 1
        assert math_check.score(f"The answer is {wrong}.", gold) == 0.0
    assert (
        gsm8k_accuracy(
            completions=[r["answer"] for r in rows[:50]], answer=[r["answer"] for r in rows[:50]]
        )
        == [1.0] * 50
    )


@pytest.mark.skipif(not (SHARED_GSM8K / "test.jsonl").is_file(), reason="no ../shared/data/gsm8k")
def test_shared_gsm8k_directory_as_a_source() -> None:
    cfg = config(source(SHARED_GSM8K, train_size=50), test_size=1319)
    train, test = load_source(cfg.data.sources[0], cfg.seed, 1319)
    assert len(test) == 1319 and len(train) == 50
    assert not {r["question"] for r in train} & {r["question"] for r in test}


# --- loading ----------------------------------------------------------------------------------


def test_jsonl_source_keeps_columns_and_builds_prompts(tmp_path: Path) -> None:
    root = gsm8k_dir(tmp_path / "gsm8k")
    cfg = config(
        source(
            root / "train.jsonl",
            test_path=str(root / "test.jsonl"),
            system_prompt="Be brief.",
            answer_format="gsm8k",
        )
    )
    train, test = load_source(cfg.data.sources[0], cfg.seed, 4)
    assert len(train) == 30 and len(test) == 4
    row = train[0]
    assert row["prompt"][0] == {"role": "system", "content": "Be brief."}
    assert row["prompt"][-1] == {"role": "user", "content": row["question"]}
    assert (
        row["task"] == "gsm8k"
        and "####" in row["answer"]
        and row["gold"] == row["answer"].split("#### ")[1]
    )
    held = fdata.test_sets(cfg)["gsm8k"]
    assert [r["answer"] for r in held] == [r["gold"] for r in test] and held[0]["checker"] == "math"
    assert not {r["prompt"][-1]["content"] for r in held} & set(training_pool(cfg)["question"])


def test_directory_source_and_carved_test_split(tmp_path: Path) -> None:
    root = gsm8k_dir(tmp_path / "d", train=20, test=5)
    cfg = config(source(root))  # directory: train.jsonl + test.jsonl
    train, test = load_source(cfg.data.sources[0], cfg.seed, 4)
    assert len(train) == 20 and len(test) == 4
    only_train = write_jsonl(tmp_path / "one.jsonl", gsm8k_rows(20))
    cfg = config(source(only_train, train_size=10))  # no test file: carve the held-out rows
    train, test = load_source(cfg.data.sources[0], cfg.seed, 4)
    assert len(train) == 10 and len(test) == 4
    assert not {r["question"] for r in train} & {r["question"] for r in test}
    assert load_source(cfg.data.sources[0], cfg.seed, 4) == (train, test)  # deterministic
    other_seed = load_source(cfg.data.sources[0], cfg.seed + 1, 4)
    assert other_seed != (train, test)


def test_csv_parquet_and_json_files_with_renames(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"problem": f"What is {i}+{i}?", "final": str(2 * i)} for i in range(12)]
    with (tmp_path / "d.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["problem", "final"])
        writer.writeheader()
        writer.writerows(rows)
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "d.parquet")
    (tmp_path / "d.json").write_text(json.dumps(rows))
    for name in ("d.csv", "d.parquet", "d.json"):
        cfg = config(
            {
                "name": "sums",
                "path": str(tmp_path / name),
                "rename": {"problem": "question", "final": "answer"},
                "prompt_column": "question",
                "answer_format": "plain",
            }
        )
        train, test = load_source(cfg.data.sources[0], 0, 3)
        assert len(train) == 9 and len(test) == 3, name
        assert {"question", "answer", "gold", "task", "prompt"} <= set(
            train[0]
        ) and "problem" not in train[0]


def test_hub_source_calls_load_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    calls = []

    def fake_load_dataset(path, name=None, split=None, **kwargs):
        calls.append((path, name, split))
        rows = gsm8k_rows(12, seed=0 if split == "train" else 1)
        return datasets.Dataset.from_list(rows)

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    cfg = config(
        {
            "name": "gsm8k",
            "hub": "openai/gsm8k",
            "subset": "main",
            "test_split": "test",
            "prompt_column": "question",
        }
    )
    train, test = load_source(cfg.data.sources[0], 7, 4)
    assert ("openai/gsm8k", "main", "train") in calls and ("openai/gsm8k", "main", "test") in calls
    assert len(train) == 12 and len(test) == 4


def test_openr1_style_plain_answers_and_boxed_solutions(tmp_path: Path) -> None:
    rows = [
        {
            "problem": f"Compute {i}/2.",
            "solution": f"... so $\\boxed{{\\frac{{{i}}}{{2}}}}$",
            "answer": f"\\frac{{{i}}}{{2}}",
            "uuid": str(i),
        }
        for i in range(1, 11)
    ]
    path = write_jsonl(tmp_path / "openr1.jsonl", rows)
    for fmt, column in (("plain", "answer"), ("boxed", "solution")):
        cfg = config(
            {
                "name": "openr1",
                "path": str(path),
                "prompt_column": "problem",
                "answer_column": column,
                "answer_format": fmt,
            }
        )
        train, _ = load_source(cfg.data.sources[0], 0, 2)
        assert all(CHECKERS["math"].is_correct(f"\\boxed{{{r['gold']}}}", r["gold"]) for r in train)
        assert train[0]["uuid"]  # every column survives
