"""Bring-your-own data sources and real math datasets: loading, TRL reward calls, bad input."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import pytest

from fgrpo.core.config import Config, SourceConfig
from fgrpo.core.errors import ConfigError
from fgrpo.data import partitions as fdata
from fgrpo.data.partitions import check_data, client_partition, task_counts, training_pool
from fgrpo.runtime.configs import config_from_dict, config_from_flat, load_config
from fgrpo.tasks import checker_for
from fgrpo.tasks.math_datasets import (
    CHECKERS,
    answer_accuracy,
    boxed_accuracy,
    gold_from_answer,
    gsm8k_accuracy,
    parse_gold,
)
from fgrpo.tasks.rewards import reward_functions
from fgrpo.tasks.source_rewards import RewardFunctionError, import_object
from fgrpo.tasks.sources import DataError, load_source
from tests.data_helpers import SHARED_GSM8K, gsm8k_dir, gsm8k_rows, write_jsonl

HERE = "tests.test_sources"
CALLS: list[dict[str, Any]] = []


# --- reward functions referenced by import path from the configs below ---------------------


def recording_reward(prompts, completions, **kwargs):
    """Records what TRL would hand over; scores 1 per completion, None for odd ids."""
    CALLS.append({"prompts": prompts, "completions": completions, **kwargs})
    return [None if str(q).endswith("skip") else 1.0 for q in kwargs["question"]]


def raising_reward(completions, **kwargs):
    raise ZeroDivisionError("boom")


def nan_reward(completions, **kwargs):
    return [float("nan")] * len(completions)


def short_reward(completions, **kwargs):
    return [1.0] * (len(completions) - 1)


def text_reward(completions, **kwargs):
    return ["good"] * len(completions)


def source(location: Path, **extra: Any) -> dict[str, Any]:
    return {
        "name": "gsm8k",
        "path": str(location),
        "prompt_column": "question",
        "answer_column": "answer",
        **extra,
    }


def config(*sources: dict[str, Any], **data: Any) -> Config:
    tree = {
        "federation": {"num_clients": 2},
        "data": {"tasks": [], "partition": "iid", "test_size": 4, **data, "sources": list(sources)},
    }
    return config_from_dict(tree)


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


# --- rewards reach TRL's way -------------------------------------------------------------------


def test_columns_reach_reward_functions_as_trl_keyword_lists(tmp_path: Path) -> None:
    root = gsm8k_dir(tmp_path / "g")
    cfg = config(
        source(root, rewards=[f"{HERE}:recording_reward"]),
        tasks=["addition"],
        reward_scale={"gsm8k": 2.0},
    )
    funcs = reward_functions(cfg)
    assert [f.__name__ for f in funcs] == ["task_reward", "gsm8k:recording_reward"]
    pool = training_pool(cfg)
    labels = pool["task"]
    picked = [i for i, t in enumerate(labels) if t == "gsm8k"][:3] + [
        i for i, t in enumerate(labels) if t != "gsm8k"
    ][:5]
    rows = pool.select(sorted(picked)).to_list()  # a mixed batch, as a client with both tasks sees
    mine = [i for i, r in enumerate(rows) if r["task"] == "gsm8k"]
    assert len(mine) == 3
    rows[mine[0]]["question"] += " skip"
    CALLS.clear()
    out = funcs[1](
        prompts=[r["prompt"] for r in rows],
        completions=[[{"role": "assistant", "content": "1"}]] * 8,
        completion_ids=[[1]] * 8,
        trainer_state=None,
        **{k: [r[k] for r in rows] for k in rows[0] if k != "prompt"},
    )
    call = CALLS[-1]
    assert set(call) >= {
        "prompts",
        "completions",
        "completion_ids",
        "trainer_state",
        "question",
        "answer",
        "task",
        "gold",
    }
    assert len(call["question"]) == len(call["completions"]) == len(mine)  # only this source's rows
    assert call["answer"][0].count("####") == 1  # the dataset's own column, untouched
    assert all(t == "gsm8k" for t in call["task"])
    expected = [None] * 8
    for i in mine:
        expected[i] = (
            None if i == mine[0] else 2.0
        )  # None passes through (TRL skips it); scale applies
    assert out == expected
    assert (
        funcs[0](
            completions=["1"] * 8,
            answer=[r["answer"] for r in rows],
            task=[r["task"] for r in rows],
        )[mine[0]]
        is None
    )


def test_source_without_rewards_uses_its_checker(tmp_path: Path) -> None:
    cfg = config(source(gsm8k_dir(tmp_path / "g")))
    (func,) = reward_functions(cfg)
    assert func.__name__ == "gsm8k:math-accuracy"
    out = func(
        prompts=["q", "q"],
        completions=["#### 12", "13"],
        gold=["12", "12"],
        task=["gsm8k", "gsm8k"],
    )
    assert out == [1.0, 0.0]


def test_evaluation_uses_the_source_checker(tmp_path: Path) -> None:
    cfg = config(source(gsm8k_dir(tmp_path / "g")), tasks=["addition"])
    held = fdata.test_sets(cfg)
    assert checker_for("gsm8k", held["gsm8k"]) is CHECKERS["math"]
    assert checker_for("addition", held["addition"]).name == "addition"
    row = held["gsm8k"][0]
    assert checker_for("gsm8k", held["gsm8k"]).is_correct(
        f"so \\boxed{{{row['answer']}}}", row["answer"]
    )


def test_sources_flow_through_partitions(tmp_path: Path) -> None:
    tree = {
        "federation": {"num_clients": 3},
        "data": {
            "tasks": ["addition", "countdown"],
            "train_size": 24,
            "test_size": 4,
            "partition": "pathological",
            "tasks_per_client": 1,
            "sources": [source(gsm8k_dir(tmp_path / "g"), train_size=24)],
        },
    }
    cfg = config_from_dict(tree)
    counts = task_counts(cfg)
    assert sum(c["gsm8k"] for c in counts) == 24 and sum(c["addition"] for c in counts) == 12
    assert all(sum(1 for v in c.values() if v) == 1 for c in counts)  # one task per client
    assert {t for pid in range(3) for t in client_partition(cfg, pid)["task"]} == {
        "addition",
        "countdown",
        "gsm8k",
    }


# --- config ------------------------------------------------------------------------------------


def test_sources_survive_json_and_flat_round_trips(tmp_path: Path) -> None:
    root = gsm8k_dir(tmp_path / "g")
    cfg = config(
        source(root, rename={"q": "question"}, rewards=[f"{HERE}:recording_reward"], test_size=3)
    )
    again = config_from_dict(json.loads(cfg.to_json()))
    assert again == cfg and isinstance(again.data.sources[0], SourceConfig)
    assert config_from_flat(cfg.flatten()) == cfg


def test_toml_array_of_tables(tmp_path: Path) -> None:
    root = gsm8k_dir(tmp_path / "g")
    toml = tmp_path / "c.toml"
    toml.write_text(
        f'[data]\ntasks = []\n[[data.sources]]\nname = "a"\npath = "{root}"\nprompt_column = "question"\n'
        f'[[data.sources]]\nname = "b"\npath = "{root / "train.jsonl"}"\nprompt_column = "question"\n'
    )
    cfg = load_config(toml)
    assert [s.name for s in cfg.data.sources] == ["a", "b"]


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ({"colour": "red"}, "data.sources[0].colour"),
        ({"checker": "fuzzy"}, "data.sources[0].checker"),
        ({"answer_format": "xml"}, "data.sources[0].answer_format"),
        ({"train_size": -3}, "data.sources[0].train_size"),
        ({"name": ""}, "data.sources[0].name"),
        ({"name": "addition"}, "data.sources[0].name"),
        ({"path": "/no/such/file.jsonl"}, "data.sources[0].path"),
        ({"test_path": "/no/such/test.jsonl"}, "data.sources[0].test_path"),
        ({"hub": "openai/gsm8k"}, "data.sources[0]"),  # both path and hub
        ({"rewards": ["no_colon_here"]}, "data.sources[0].rewards[0]"),
        (
            {"rewards": [f"{HERE}:recording_reward", "no_such_module_xyz:f"]},
            "data.sources[0].rewards[1]",
        ),
        ({"rewards": [f"{HERE}:no_such_function"]}, "data.sources[0].rewards[0]"),
        ({"rewards": [f"{HERE}:HERE"]}, "data.sources[0].rewards[0]"),  # not callable
        ({"rename": {"a": 3}}, "data.sources[0].rename.a"),
    ],
)
def test_bad_source_config_names_the_key(tmp_path: Path, extra: dict[str, Any], key: str) -> None:
    root = gsm8k_dir(tmp_path / "g")
    with pytest.raises(ConfigError) as err:
        config(source(root, **extra))
    assert err.value.key == key


def test_reward_scale_must_name_a_task_or_source(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="data.reward_scale.gsm9k"):
        config(source(gsm8k_dir(tmp_path / "g")), reward_scale={"gsm9k": 2.0})


def test_reward_from_a_python_file(tmp_path: Path) -> None:
    module = tmp_path / "my_rewards.py"
    module.write_text(
        "def length(completions, **kw):\n    return [float(len(c)) for c in completions]\n"
    )
    fn = import_object(f"{module}:length")
    assert fn(completions=["ab"]) == [2.0]


# --- bad input: one clear message naming the file and row, or the function ----------------------


def bad_file(tmp_path: Path, rows: list[Any]) -> Path:
    lines = [r if isinstance(r, str) else json.dumps(r) for r in rows]
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


GOOD = {"question": "What is 1+1?", "answer": "1+1=2\n#### 2"}


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"answer": "#### 2"}, "no prompt column 'question'"),
        ({"question": "  ", "answer": "#### 2"}, "empty prompt column 'question'"),
        ({"question": "Q?"}, "no answer column 'answer'"),
        ({"question": "Q?", "answer": ""}, "empty answer column 'answer'"),
        ({"question": "Q?", "answer": None}, "empty answer column 'answer'"),
        (
            {"question": "Q?", "answer": "two apples, no marker"},
            "answer cannot be parsed (gsm8k format)",
        ),
        ({"question": "Q?", "answer": "#### ???"}, "cannot be parsed by the 'math' checker"),
        ({"question": "Q?", "answer": "#### 2", "task": "x"}, "column 'task' is reserved"),
        ("{not json", "not valid JSON"),
    ],
)
def test_bad_rows_name_file_and_line(tmp_path: Path, row: Any, message: str) -> None:
    path = bad_file(tmp_path, [GOOD, GOOD | {"question": "What is 2+2?", "answer": "#### 4"}, row])
    cfg = config(source(path, answer_format="gsm8k"), test_size=1)
    with pytest.raises(DataError) as err:
        training_pool(cfg)
    assert f"{path}, line 3" in str(err.value) and message in str(err.value)


def test_bad_rows_can_be_skipped_but_not_silently(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rows = [GOOD | {"question": f"What is {i}+{i}?", "answer": f"#### {2 * i}"} for i in range(6)]
    path = bad_file(tmp_path, rows + [{"question": "Q?", "answer": "no number"}])
    cfg = config(source(path, answer_format="gsm8k", on_bad_rows="skip"), test_size=2)
    with caplog.at_level("WARNING", logger="fgrpo"):
        train, test = load_source(cfg.data.sources[0], 0, 2)
    assert len(train) + len(test) == 6
    assert "skipped 1 bad rows" in caplog.text and "line 7" in caplog.text


def test_missing_file_at_load_time_names_it(tmp_path: Path) -> None:
    root = gsm8k_dir(tmp_path / "g")
    cfg = config(source(root / "train.jsonl"))
    (root / "train.jsonl").unlink()
    cfg.data.sources[0].train_size = 3  # a different cache key
    with pytest.raises(DataError, match="train.jsonl"):
        training_pool(cfg)


def test_empty_directory_names_the_missing_split(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    cfg = config(source(tmp_path / "empty"))
    with pytest.raises(DataError, match="no train"):
        training_pool(cfg)


@pytest.mark.parametrize(
    ("function", "message"),
    [
        ("raising_reward", "raised ZeroDivisionError: boom"),
        ("nan_reward", "returned nan for sample 0"),
        ("short_reward", "returned 3 values for 4 completions"),
        ("text_reward", "returned 'good' for sample 0"),
    ],
)
def test_misbehaving_reward_functions_are_named(
    tmp_path: Path, function: str, message: str
) -> None:
    cfg = config(source(gsm8k_dir(tmp_path / "g"), rewards=[f"{HERE}:{function}"]))
    (func,) = reward_functions(cfg)
    with pytest.raises(RewardFunctionError) as err:
        func(prompts=["p"] * 4, completions=["1"] * 4, task=["gsm8k"] * 4, question=["q"] * 4)
    assert f"{HERE}:{function}" in str(err.value) and message in str(err.value)
    with pytest.raises(RewardFunctionError, match=function):
        check_data(cfg)  # the pre-flight check `fgrpo run` does catches it before training


def test_reward_nan_check_accepts_numpy_and_none(tmp_path: Path) -> None:
    import numpy as np

    from fgrpo.tasks.source_rewards import source_reward

    func = source_reward(lambda completions, **kw: np.array([0.5, 1.0]), "np", "s")
    assert func(prompts=["a", "b"], completions=["x", "y"], task=["s", "s"]) == [0.5, 1.0]
    func = source_reward(lambda completions, **kw: [None, math.inf], "inf", "s")
    with pytest.raises(RewardFunctionError, match="returned inf for sample 1"):
        func(prompts=["a", "b"], completions=["x", "y"], task=["s", "s"])


# --- end to end ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_gsm8k_source_with_two_reward_paths_runs_a_federated_round(tmp_path: Path) -> None:
    """configs/gsm8k_local.toml with a local GSM8K JSONL: one Flower round, tiny model."""
    from fgrpo.cli.main import main

    root = gsm8k_dir(tmp_path / "gsm8k", train=16, test=4)
    repo = Path(__file__).resolve().parents[1]
    sources = (
        f'[{{name = "gsm8k", path = "{root / "train.jsonl"}", test_path = "{root / "test.jsonl"}", '
        'prompt_column = "question", answer_format = "gsm8k", test_size = 4, '
        'rewards = ["fgrpo.tasks.example_rewards:correct_number", "fgrpo.tasks.example_rewards:shows_work"]}]'
    )
    out = tmp_path / "run"
    code = main(
        [
            "run",
            "--config",
            str(repo / "configs" / "gsm8k_local.toml"),
            "--out",
            str(out),
            "--set",
            f"data.sources={sources}",
            "--set",
            'model.name="tiny-random"',
            "--set",
            "federation.rounds=1",
            "--set",
            "grpo.per_device_train_batch_size=4",
            "--set",
            "grpo.max_completion_length=12",
            "--set",
            "eval.max_new_tokens=12",
        ]
    )
    assert code == 0
    rounds = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(rounds) == 1 and not rounds[0]["failures"]
    # 8 rows each, one held out as the client's probe (for every strategy: fgrpo.data.probe_rows)
    assert len(rounds[0]["clients"]) == 2 and all(
        c["num-examples"] == 7 for c in rounds[0]["clients"]
    )
    assert set(rounds[0]["eval"]) == {"gsm8k", "macro"}
    assert (out / "final" / "adapter").is_dir()
