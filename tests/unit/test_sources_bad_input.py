"""Bad source data and misbehaving reward functions: one clear message naming the file and row, or
the function; and a real federated round over a GSM8K source."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from fgrpo.data.partitions import check_data, training_pool
from fgrpo.tasks.rewards import reward_functions
from fgrpo.tasks.source_rewards import RewardFunctionError
from fgrpo.tasks.sources import DataError, load_source

from ..data_helpers import gsm8k_dir
from ..source_helpers import HERE, config, source

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
    repo = Path(__file__).resolve().parents[2]
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
