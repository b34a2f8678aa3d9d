"""The client's half of FGRPO: per-task rollout signals, the held-out probe, client-side
baselines."""

import json
from collections import Counter

import numpy as np
import pytest
from flwr.app import ConfigRecord, RecordDict
from transformers import TrainerState

from fgrpo.client.app import lr_scale
from fgrpo.client.signal import (
    HISTORY_KEY,
    RolloutRecorder,
    per_task_means,
    plan_signal,
    signal_metrics,
)
from fgrpo.core.errors import ConfigError
from fgrpo.core.protocol import SIGNALS_RECORD_KEY
from fgrpo.data import partitions as fdata
from fgrpo.data.partitions import client_partition, prompt_key, training_pool
from fgrpo.data.probe_rows import client_rows, pooled_training_rows, probe_quotas
from fgrpo.runtime.configs import load_config
from fgrpo.server.strategies import build_strategy
from fgrpo.tasks.rewards import reward_ranges

from ..data_helpers import write_jsonl
from ..replies import reply

TASKS = 'data.tasks=["addition", "multiplication", "sorting", "countdown"]'


def cfg_with(*overrides: str):
    return load_config(
        None,
        [TASKS, "federation.num_clients=4", "data.train_size=200", "data.test_size=10", *overrides],
    )


# --- the probe ---------------------------------------------------------------------------


def rows_of(cfg, pid):
    return client_rows(cfg, pid, {"partition-id": pid})


@pytest.mark.parametrize("alpha", [0.1, 1.0])
def test_procedural_probes_take_no_training_row_and_are_the_same_every_round(alpha):
    cfg = cfg_with(f"data.alpha={alpha}", "data.probe_size=8")
    pool = {prompt_key(r) for r in training_pool(cfg)}
    held_out = {prompt_key(r) for rows in fdata.test_sets(cfg).values() for r in rows}
    for pid in range(cfg.federation.num_clients):
        rows = rows_of(cfg, pid)
        assert [prompt_key(r) for r in rows.train] == [
            prompt_key(r) for r in client_partition(cfg, pid)
        ]
        probe_keys = [prompt_key(r) for r in rows.probe]
        assert (
            len(probe_keys) == len(set(probe_keys)) == 8
        )  # generated: not limited by the partition's size
        assert not set(probe_keys) & pool  # nobody trains on a probe prompt
        assert [
            prompt_key(r) for r in rows_of(cfg, pid).probe
        ] == probe_keys  # next round: the same probe
        assert not set(probe_keys) & held_out  # nor a test prompt


def test_probe_covers_every_task_in_proportion_to_the_partition():
    cfg = cfg_with("data.partition=iid", "data.probe_size=8")
    partition = client_partition(cfg, 0)
    probe = rows_of(cfg, 0).probe
    assert Counter(partition["task"]) == {
        "countdown": 16,
        "multiplication": 14,
        "sorting": 13,
        "addition": 7,
    }
    # one row each, then the other 4 to the tasks furthest below their share 8 * count / 50:
    # countdown (2.56), multiplication (2.24), sorting (2.08), countdown again
    assert Counter(r["task"] for r in probe) == {
        "countdown": 3,
        "multiplication": 2,
        "sorting": 2,
        "addition": 1,
    }


def test_probe_quotas_respect_each_tasks_cap():
    caps = {"a": 50, "b": 1, "c": 0}  # a data source's rows: at most half of each task
    assert probe_quotas({"a": 100, "b": 3, "c": 1}, 40, caps) == {"a": 39, "b": 1, "c": 0}
    assert probe_quotas({"a": 4, "b": 4}, 10, {"a": 2, "b": 2}) == {
        "a": 2,
        "b": 2,
    }  # the rows run out first
    assert probe_quotas({"a": 4, "b": 1}, 10, {"a": 10, "b": 10}) == {
        "a": 8,
        "b": 2,
    }  # generated: no cap


def test_a_sources_probe_rows_are_held_out_for_every_strategy(tmp_path):
    path = write_jsonl(
        tmp_path / "qa.jsonl",
        [{"prompt": f"What is {i} + 1?", "answer": str(i + 1)} for i in range(100)],
    )
    base = [
        "data.tasks=[]",
        "federation.num_clients=2",
        "data.partition=iid",
        "data.test_size=4",
        f'data.sources=[{{name = "qa", path = "{path}", answer_format = "plain", checker = "exact"}}]',
    ]
    by_strategy = {}
    for strategy in ("fgrpo", "fedavg", "fedprox", "scaffold"):
        cfg = load_config(None, [*base, f"strategy.name={strategy}", "data.probe_size=4"])
        by_strategy[strategy] = [
            [prompt_key(r) for r in rows_of(cfg, pid).train] for pid in range(2)
        ]
        probe = [prompt_key(r) for pid in range(2) for r in rows_of(cfg, pid).probe]
        assert len(probe) == 8 and not set(probe) & {
            k for keys in by_strategy[strategy] for k in keys
        }
        assert sorted(probe + [k for keys in by_strategy[strategy] for k in keys]) == sorted(
            prompt_key(r) for r in training_pool(cfg)
        )
        centralized = load_config(None, [*base, "strategy.name=centralized", "data.probe_size=4"])
        assert sorted(prompt_key(r) for r in pooled_training_rows(centralized)) == sorted(
            k for keys in by_strategy[strategy] for k in keys
        )  # centralized: the clients' rows together
    assert len({json.dumps(v) for v in by_strategy.values()}) == 1
    everything = load_config(None, [*base, "data.probe_size=0"])
    assert (
        sum(len(rows_of(everything, pid).train) for pid in range(2)) == 96
    )  # 100 less the 4 test rows
    small = load_config(None, [*base, "data.probe_size=64"])  # 48 rows per client: a tenth, 4 each
    assert [len(rows_of(small, pid).probe) for pid in range(2)] == [4, 4]


def test_the_probe_signal_without_probe_rows_is_a_clear_error():
    cfg = cfg_with("data.probe_size=0")
    with pytest.raises(ConfigError, match="data.probe_size"):
        plan_signal("probe", cfg, 0, rows_of(cfg, 0), [], (None, None), RecordDict())


def test_the_moved_probe_size_key_says_where_it_went():
    with pytest.raises(ConfigError, match=r"strategy.probe_size.*moved to data.probe_size"):
        cfg_with("strategy.probe_size=8")


@pytest.mark.parametrize("request_", [None, "train-reward", "probe"])
def test_the_client_trains_on_the_same_rows_whatever_the_server_asks(request_):
    cfg = cfg_with("data.probe_size=8")
    rows = rows_of(cfg, 1)
    plan = plan_signal(request_, cfg, 1, rows, ["f"], (None, None), RecordDict())
    assert plan.dataset is rows.train
    assert (plan.measure is None) == (request_ is None)


# --- rollout signals --------------------------------------------------------------------


def test_recorder_sums_the_reward_functions_per_rollout_and_skips_the_first_step():
    def accuracy(completions, task, **_):
        return [
            1.0 if c == "right" else 0.0 if t != "src" else None
            for c, t in zip(completions, task, strict=False)
        ]

    def fmt(completions, **_):
        return [0.5] * len(completions)

    recorder = RolloutRecorder([accuracy, fmt], skip_steps=1)
    wrapped_accuracy, wrapped_fmt = recorder.reward_funcs
    assert wrapped_accuracy.__name__ == "accuracy"  # TRL logs per-function means by name
    for step, completions in [
        (0, ["right", "right", "right"]),
        (1, ["right", "wrong", "wrong"]),
        (2, ["wrong", "right", "right"]),
    ]:
        kwargs = {
            "completions": completions,
            "task": ["add", "add", "mul"],
            "trainer_state": TrainerState(global_step=step),
        }
        assert wrapped_accuracy(**kwargs) == accuracy(**kwargs)
        wrapped_fmt(**kwargs)
    # steps 1 and 2 count: add = 1.5, 0.5, 0.5, 1.5 -> 1.0 over 4; mul = 0.5, 1.5 -> 1.0 over 2
    assert recorder.signals() == {"add": (1.0, 4), "mul": (1.0, 2)}
    everything = RolloutRecorder([accuracy, fmt], skip_steps=0)
    everything.rollouts = recorder.rollouts
    assert everything.signals()["add"] == (pytest.approx(7 / 6), 6)


def test_recorder_keeps_the_last_step_when_there_are_fewer_steps_than_skipped():
    recorder = RolloutRecorder([lambda completions, **_: [2.0] * len(completions)], skip_steps=5)
    recorder.reward_funcs[0](
        completions=["x", "y"], task=["t", "t"], trainer_state=TrainerState(global_step=0)
    )
    assert recorder.signals() == {"t": (2.0, 2)}


def test_per_task_means_leave_out_unscored_rows():
    assert per_task_means(["a", "b", "a", "b"], [1.0, None, 3.0, 4.0]) == {
        "a": (2.0, 2),
        "b": (4.0, 1),
    }


# --- reward ranges and the per-client learning rate --------------------------------------


def test_reward_ranges_follow_scale_and_format_reward():
    cfg = cfg_with("data.reward_scale={sorting = 2.0}", "data.format_reward=0.5")
    assert reward_ranges(cfg) == {
        "addition": (0.0, 1.5),
        "multiplication": (0.0, 10.5),
        "sorting": (0.0, 10.5),
        "countdown": (-1.0, 1.5),
    }


def test_client_lr_scale_scales_one_clients_learning_rate():
    cfg = cfg_with('federation.client_lr_scale={"0" = 0.0, "2" = 0.5}')
    assert [lr_scale(cfg, pid) for pid in range(4)] == [0.0, 1.0, 0.5, 1.0]


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ('federation.client_lr_scale={"7" = 0.0}', "federation.client_lr_scale.7"),
        ('federation.client_lr_scale={"0" = -1.0}', "federation.client_lr_scale.0"),
        (("strategy.gain=delta", "strategy.signal=train-reward"), "strategy.gain"),
    ],
)
def test_bad_signal_settings_name_the_key(override, key):
    with pytest.raises(ConfigError) as err:
        cfg_with(*(override if isinstance(override, tuple) else (override,)))
    assert err.value.key == key


# --- client-side baselines ---------------------------------------------------------------


@pytest.mark.parametrize("gain", ["range", "ratio", "zscore", "difference"])
def test_client_side_baselines_give_the_same_weights_as_server_side(gain):
    server_cfg = cfg_with(f"strategy.gain={gain}")
    client_cfg = cfg_with(f"strategy.gain={gain}", "strategy.baseline_at=client")
    server, client = build_strategy(server_cfg), build_strategy(client_cfg)
    states = {cid: RecordDict() for cid in "abc"}
    sizes = {"a": 30, "b": 50, "c": 20}
    held = {
        "a": ["addition", "countdown"],
        "b": ["multiplication"],
        "c": ["sorting", "countdown", "addition"],
    }
    rng = np.random.default_rng(0)
    for rnd in range(1, 6):
        server_replies, client_replies = [], []
        for cid, tasks in held.items():
            after = {
                t: (float(rng.uniform(*reward_ranges(server_cfg)[t])), int(rng.integers(1, 9)))
                for t in tasks
            }
            server_side = signal_metrics(server_cfg, RecordDict(), after, None)
            client_side = signal_metrics(client_cfg, states[cid], after, None)
            assert set(client_side) == {"gain"}  # raw rewards stay with the client
            server_replies.append(
                _with_signals(reply(cid, {"w": [1.0]}, sizes[cid], 0.0), server_side)
            )
            client_replies.append(
                _with_signals(reply(cid, {"w": [1.0]}, sizes[cid], 0.0), client_side)
            )
        for strategy, replies in ((server, server_replies), (client, client_replies)):
            strategy.global_arrays = {"w": np.zeros(1, dtype=np.float32)}
            strategy.aggregate_train(rnd, replies)
        np.testing.assert_allclose(
            [r["weight"] for r in client.ledger], [r["weight"] for r in server.ledger], rtol=1e-12
        )
        assert [r["gain"] for r in client.ledger] == pytest.approx(
            [r["gain"] for r in server.ledger], rel=1e-12
        )
        if rnd >= 3:  # the gains matter by now: not FedAvg's weights
            assert not np.allclose(
                [r["weight"] for r in server.ledger], np.array([30, 50, 20]) / 100
            )
    assert HISTORY_KEY in states["a"].config_records and client.history == {}


def _with_signals(message, items):
    message.content[SIGNALS_RECORD_KEY] = ConfigRecord(items)
    return message
