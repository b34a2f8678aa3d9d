"""``grpo.reward_weights``: the FGRPO train-reward signal and the declared ranges follow TRL's
weighted sum."""

from __future__ import annotations

import dataclasses
import math

import pytest
from flwr.app import RecordDict
from transformers import TrainerState

from fgrpo.cli.main import main
from fgrpo.client.signal import plan_signal
from fgrpo.core.config import Config, DataConfig, SourceConfig
from fgrpo.core.errors import ConfigError
from fgrpo.data.probe_rows import ClientRows
from fgrpo.runtime.configs import load_config
from fgrpo.tasks.rewards import (
    reward_function_names,
    reward_functions,
    reward_ranges,
    weighted_total,
)

WEIGHTS = "grpo.reward_weights=[2.0, 0.5]"


def accuracy(completions, task, **_):
    return [
        None if t != "add" else 1.0 if c == "right" else 0.0
        for c, t in zip(completions, task, strict=False)
    ]


def fmt(completions, task, **_):
    return [
        None if t == "src" else math.nan if c == "odd" else 0.4
        for c, t in zip(completions, task, strict=False)
    ]


def test_the_train_reward_signal_is_the_weighted_sum_trl_trains_on():
    # Two reward functions (task reward, format reward) weighted 2.0 and 0.5:
    #   add "right": 2·1 + 0.5·0.4 = 2.2;  add "wrong": 2·0 + 0.5·0.4 = 0.2  -> add: 1.2 over 2
    #   add "odd": 2·0 + format NaN skipped = 0.0                             -> add: 2.4/3 = 0.8
    # over 3
    #   mul: accuracy None, 0.5·0.4 = 0.2;  src: no function scored it, not counted
    cfg = load_config(None, ["data.format_reward=0.5", WEIGHTS, "strategy.signal=train-reward"])
    plan = plan_signal(
        "train-reward",
        cfg,
        0,
        ClientRows(train=None, probe=[]),
        [accuracy, fmt],
        (None, None),
        RecordDict(),
    )
    kwargs = {
        "completions": ["right", "wrong", "odd", "right", "right"],
        "task": ["add", "add", "add", "mul", "src"],
        "trainer_state": TrainerState(global_step=0),
    }
    for fn in plan.reward_funcs:
        fn(**kwargs)
    signals = plan.measure()
    assert signals["signal/add"] == pytest.approx(0.8) and signals["rollouts/add"] == 3
    assert signals["signal/mul"] == pytest.approx(0.2) and signals["rollouts/mul"] == 1
    assert "signal/src" not in signals


def test_weighted_total_skips_none_and_nan_and_a_row_nobody_scored_is_none():
    assert weighted_total([1.0, 0.4], [2.0, 0.5]) == pytest.approx(2.2)
    assert weighted_total([None, 0.4], [2.0, 0.5]) == pytest.approx(0.2)
    assert weighted_total([math.nan, 0.4], [2.0, -0.5]) == pytest.approx(-0.2)
    assert weighted_total([3.0, 0.4], [0.0, 0.5]) == pytest.approx(
        0.2
    )  # weight 0 scores the row with 0
    assert weighted_total([None, math.nan], [2.0, 0.5]) is None


def test_declared_ranges_are_the_ranges_of_the_weighted_sum():
    tasks = 'data.tasks=["addition", "multiplication", "countdown"]'
    # addition [0, 1], multiplication [0, 10], countdown [-1, 1]; format reward [0, 0.5].
    cfg = load_config(None, [tasks, "data.format_reward=0.5", WEIGHTS])
    # × 2 each, + [0, 0.25]
    assert reward_ranges(cfg) == {
        "addition": (0.0, 2.25),
        "multiplication": (0.0, 20.25),
        "countdown": (-2.0, 2.25),
    }
    # A negative weight swaps the ends of that function's part: task × −1, format × −2 = [−1, 0].
    cfg = load_config(None, [tasks, "data.format_reward=0.5", "grpo.reward_weights=[-1.0, -2.0]"])
    assert reward_ranges(cfg) == {
        "addition": (-2.0, 0.0),
        "multiplication": (-11.0, 0.0),
        "countdown": (-2.0, 1.0),
    }


def test_a_data_sources_range_is_weighted_by_its_functions_common_weight():
    source = SourceConfig(name="src", rewards=["m:one", "m:two"], reward_min=-1.0, reward_max=3.0)
    cfg = Config(
        data=DataConfig(tasks=["addition"], sources=[source]),
        grpo={"reward_weights": [2.0, -0.5, -0.5]},
    )
    assert reward_ranges(cfg) == {"addition": (0.0, 2.0), "src": (-1.5, 0.5)}
    uneven = dataclasses.replace(cfg, grpo={"reward_weights": [2.0, 1.0, 0.5]})
    with pytest.raises(ConfigError, match="'src'") as err:
        reward_ranges(uneven)
    assert err.value.key == "grpo.reward_weights"


def test_the_weights_must_match_the_reward_functions():
    cfg = load_config(None, ["data.format_reward=0.5", WEIGHTS])
    assert (
        reward_function_names(cfg)
        == [f.__name__ for f in reward_functions(cfg)]
        == ["task_reward", "format_reward"]
    )
    for bad in ["grpo.reward_weights=[1.0]", 'grpo.reward_weights=["a", "b"]']:
        with pytest.raises(ConfigError) as err:
            load_config(None, ["data.format_reward=0.5", bad])
        assert err.value.key == "grpo.reward_weights"


def test_the_cli_refuses_a_wrong_count_in_one_line(capsys):
    assert main(["data", "describe", "--set", "grpo.reward_weights=[1.0, 2.0]"]) == 2
    err = capsys.readouterr().err
    assert (
        len(err.strip().splitlines()) == 1 and "grpo.reward_weights" in err and "task_reward" in err
    )
