"""Derived columns: a data source exposes its parsed gold answer (or any column) under the name a
reward function expects, so TRL's own reward functions plug in by import path; a function whose
required argument has no column is named, with the column, in one line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fgrpo.cli.main import main
from fgrpo.core.config import Config
from fgrpo.core.errors import ConfigError
from fgrpo.data.partitions import check_data, training_pool
from fgrpo.runtime.configs import config_from_dict
from fgrpo.tasks.rewards import reward_functions
from fgrpo.tasks.source_rewards import RewardFunctionError
from fgrpo.tasks.sources import DataError, load_source

from ..data_helpers import gsm8k_dir, write_jsonl

TRL_ACCURACY = "trl.rewards:accuracy_reward"  # accuracy_reward(completions, solution, log_extra=None, **kwargs)


def gsm8k_source(root: Path, **extra: Any) -> dict[str, Any]:
    return {
        "name": "gsm8k",
        "path": str(root / "train.jsonl"),
        "test_path": str(root / "test.jsonl"),
        "prompt_column": "question",
        "answer_format": "gsm8k",
        **extra,
    }


def config(*sources: dict[str, Any], tasks: list[str] | None = None) -> Config:
    return config_from_dict(
        {
            "federation": {"num_clients": 2},
            "data": {
                "tasks": tasks or [],
                "partition": "iid",
                "test_size": 4,
                "train_size": 8,
                "sources": list(sources),
            },
        }
    )


def test_trl_accuracy_reward_scores_the_gold_answer_through_a_derived_column(
    tmp_path: Path,
) -> None:
    cfg = config(
        gsm8k_source(
            gsm8k_dir(tmp_path / "g"), columns={"solution": "gold"}, rewards=[TRL_ACCURACY]
        ),
        tasks=["addition"],
    )
    train, _ = load_source(cfg.data.sources[0], cfg.seed, 4)
    assert all(
        row["solution"] == row["gold"] and "####" in row["answer"] for row in train
    )  # a copy; answer stays raw
    check_data(
        cfg
    )  # the pre-flight: columns present, probed with gold, empty and malformed completions
    _, trl_reward = reward_functions(cfg)
    rows = training_pool(cfg).to_list()  # a mixed batch, as a client holding both tasks sees it
    right = [[{"role": "assistant", "content": f"so \\boxed{{{r['gold']}}}"}] for r in rows]
    wrong = [[{"role": "assistant", "content": "so \\boxed{-7}"}] for _ in rows]
    columns = {k: [r[k] for r in rows] for k in rows[0] if k != "prompt"}  # what GRPOTrainer passes
    for completions, score in ((right, 1.0), (wrong, 0.0)):
        out = trl_reward(
            prompts=[r["prompt"] for r in rows], completions=completions, log_extra=None, **columns
        )
        assert out == [score if r["task"] == "gsm8k" else None for r in rows]


def test_columns_copy_any_column_and_a_missing_one_names_file_and_row(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "d.jsonl",
        [{"question": f"{i}+{i}?", "answer": f"#### {2 * i}", "hint": "add"} for i in range(6)],
    )
    cfg = config(
        {
            "name": "d",
            "path": str(path),
            "prompt_column": "question",
            "columns": {"tip": "hint", "t": "task"},
        }
    )
    train, _ = load_source(cfg.data.sources[0], 0, 2)
    assert {(r["tip"], r["t"]) for r in train} == {("add", "d")}
    cfg = config(
        {
            "name": "d",
            "path": str(path),
            "prompt_column": "question",
            "columns": {"tip": "hints"},
            "on_bad_rows": "skip",
        }
    )  # a config mistake: no row is skipped for it
    with pytest.raises(
        DataError, match=r"d.jsonl, line \d+: columns.tip: no column 'hints' to copy"
    ):
        load_source(cfg.data.sources[0], 0, 2)


@pytest.mark.parametrize(
    ("columns", "key"),
    [
        ({"gold": "answer"}, "data.sources[0].columns.gold"),
        ({"completions": "gold"}, "data.sources[0].columns.completions"),
        ({"solution": ""}, "data.sources[0].columns.solution"),
    ],
)
def test_columns_may_not_take_names_fgrpo_or_trl_set(
    tmp_path: Path, columns: dict[str, str], key: str
) -> None:
    with pytest.raises(ConfigError) as err:
        config(gsm8k_source(gsm8k_dir(tmp_path / "g"), columns=columns))
    assert err.value.key == key


def test_a_reward_function_without_its_column_is_named_in_one_line_with_exit_2(
    tmp_path: Path, capsys
) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text(
        "\n".join(
            [
                "[model]",
                'name = "tiny-random"',
                "[federation]",
                "num_clients = 2",
                "[data]",
                "tasks = []",
                'partition = "iid"',
                "test_size = 4",
                "[[data.sources]]",
                *(
                    f"{k} = {json.dumps(v)}"
                    for k, v in gsm8k_source(
                        gsm8k_dir(tmp_path / "g"), rewards=[TRL_ACCURACY]
                    ).items()
                ),
                "[grpo]",
                "per_device_train_batch_size = 4",
            ]
        )
        + "\n"
    )
    code = main(["run", "--config", str(toml), "--out", str(tmp_path / "run"), "--dry-run"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert (
        TRL_ACCURACY in err
        and "needs a column 'solution'" in err
        and 'columns = {solution = "gold"}' in err
    )
    assert not (tmp_path / "run").exists()


def test_another_sources_column_does_not_count(tmp_path: Path) -> None:
    """In a mixed pool the shared table has every source's columns: 'solution' exists, but is None
    for gsm8k's rows; the check looks at the source's own rows."""
    other = write_jsonl(
        tmp_path / "m.jsonl",
        [{"problem": f"{i}*2?", "solution": f"\\boxed{{{2 * i}}}"} for i in range(8)],
    )
    cfg = config(
        gsm8k_source(gsm8k_dir(tmp_path / "g"), rewards=[TRL_ACCURACY]),
        {"name": "m", "path": str(other), "prompt_column": "problem", "answer_column": "solution"},
    )
    assert "solution" in training_pool(cfg).column_names
    with pytest.raises(
        RewardFunctionError,
        match=r"accuracy_reward \(data source 'gsm8k'\) needs a column 'solution'",
    ):
        check_data(cfg)


def test_at_training_time_a_missing_column_is_named_too(tmp_path: Path) -> None:
    """What a deployed node (no pre-flight) reports when its rows lack the column."""
    cfg = config(gsm8k_source(gsm8k_dir(tmp_path / "g"), rewards=[TRL_ACCURACY]))
    (trl_reward,) = reward_functions(cfg)
    with pytest.raises(
        RewardFunctionError,
        match="needs a column 'solution'.*columns: answer, gold, question, task",
    ):
        trl_reward(
            prompts=["p"],
            completions=[[{"role": "assistant", "content": "1"}]],
            trainer_state=None,
            question=["q"],
            answer=["#### 1"],
            gold=["1"],
            task=["gsm8k"],
        )


@pytest.mark.slow
def test_a_federated_round_trains_with_trls_accuracy_reward_on_the_derived_column(
    tmp_path: Path,
) -> None:
    root = gsm8k_dir(tmp_path / "g", train=16, test=4)
    source = gsm8k_source(root, columns={"solution": "gold"}, rewards=[TRL_ACCURACY], test_size=4)
    out = tmp_path / "run"
    code = main(
        [
            "run",
            "--out",
            str(out),
            "--set",
            'model.name="tiny-random"',
            "--set",
            "federation.num_clients=2",
            "--set",
            "federation.rounds=1",
            "--set",
            "federation.local_steps=1",
            "--set",
            "data.tasks=[]",
            "--set",
            'data.partition="iid"',
            "--set",
            "data.test_size=4",
            "--set",
            f"data.sources={json.dumps([source])}",
            "--set",
            "grpo.per_device_train_batch_size=4",
            "--set",
            "grpo.max_completion_length=12",
            "--set",
            "eval.max_new_tokens=12",
        ]
    )
    assert code == 0
    (record,) = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert not record["failures"] and len(record["clients"]) == 2
    assert all(
        c["reward"] == 0.0 for c in record["clients"]
    )  # scored by math-verify: an untrained model is wrong
