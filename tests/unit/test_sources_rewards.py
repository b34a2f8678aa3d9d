"""Bring-your-own sources in a run: rewards called the TRL way, checkers, partitions, and the
sources' config keys."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fgrpo.core.config import SourceConfig
from fgrpo.core.errors import ConfigError
from fgrpo.data import partitions as fdata
from fgrpo.data.partitions import client_partition, task_counts, training_pool
from fgrpo.runtime.configs import config_from_dict, config_from_flat, load_config
from fgrpo.tasks import checker_for
from fgrpo.tasks.math_datasets import (
    CHECKERS,
)
from fgrpo.tasks.rewards import reward_functions
from fgrpo.tasks.source_rewards import import_object

from ..data_helpers import gsm8k_dir
from ..source_helpers import CALLS, HERE, config, source

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
