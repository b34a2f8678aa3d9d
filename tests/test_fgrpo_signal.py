"""The client's half of FGRPO: per-task rollout signals, the held-out probe, client-side baselines."""

from collections import Counter

import numpy as np
import pytest
from flwr.app import ConfigRecord, RecordDict
from transformers import TrainerState

from fgrpo.client.app import lr_scale
from fgrpo.client.signal import HISTORY_KEY, RolloutRecorder, per_task_means, plan_signal, probe_quotas, signal_metrics, split_probe
from fgrpo.config import ConfigError, load_config
from fgrpo.data import client_partition, prompt_key
from fgrpo.server.strategies import build_strategy
from fgrpo.server.strategies.weighted import SIGNALS_RECORD_KEY
from fgrpo.tasks.rewards import reward_ranges

from .replies import reply

TASKS = 'data.tasks=["addition", "multiplication", "sorting", "countdown"]'


def cfg_with(*overrides: str):
    return load_config(None, [TASKS, "federation.num_clients=4", "data.train_size=200", "data.test_size=10",
                              *overrides])


# --- the probe ---------------------------------------------------------------------------


@pytest.mark.parametrize("alpha", [0.1, 1.0])
def test_probe_never_overlaps_the_training_rows_and_is_the_same_every_round(alpha):
    cfg = cfg_with(f"data.alpha={alpha}", "strategy.signal=probe", "strategy.probe_size=8")
    for pid in range(cfg.federation.num_clients):
        partition = client_partition(cfg, pid)
        plan = plan_signal("probe", cfg, pid, partition, [], (None, None), RecordDict())
        train, probe = split_probe(partition, cfg.strategy.probe_size, seed=cfg.seed * 1_000_003 + pid)
        train_keys = [prompt_key(r) for r in plan.dataset]
        probe_keys = [prompt_key(r) for r in probe]
        assert train_keys == [prompt_key(r) for r in train]  # what the client trains on
        assert not set(train_keys) & set(probe_keys)
        assert sorted(train_keys + probe_keys) == sorted(prompt_key(r) for r in partition)
        assert len(probe_keys) == min(8, len(partition) // 2)
        again = plan_signal("probe", cfg, pid, client_partition(cfg, pid), [], (None, None), RecordDict())
        assert [prompt_key(r) for r in again.dataset] == train_keys  # next round: the same split


def test_probe_covers_every_task_in_proportion_to_the_partition():
    cfg = cfg_with("data.partition=iid")
    partition = client_partition(cfg, 0)
    _, probe = split_probe(partition, 8, seed=3)
    assert Counter(partition["task"]) == {"countdown": 16, "multiplication": 14, "sorting": 13, "addition": 7}
    # one row each, then the other 4 to the tasks furthest below their share 8 * count / 50:
    # countdown (2.56), multiplication (2.24), sorting (2.08), countdown again
    assert Counter(probe["task"]) == {"countdown": 3, "multiplication": 2, "sorting": 2, "addition": 1}


def test_probe_quotas_never_take_more_than_half_a_task():
    assert probe_quotas({"a": 100, "b": 3, "c": 1}, 40) == {"a": 39, "b": 1, "c": 0}
    assert probe_quotas({"a": 4, "b": 4}, 10) == {"a": 2, "b": 2}  # the partition runs out first


def test_a_partition_too_small_for_a_probe_is_a_clear_error():
    cfg = cfg_with()
    tiny = client_partition(cfg, 0).select([0])
    with pytest.raises(ConfigError, match="strategy.probe_size"):
        split_probe(tiny, 8, seed=0)


def test_without_a_request_the_client_trains_on_its_whole_partition():
    cfg = cfg_with()
    partition = client_partition(cfg, 1)
    plan = plan_signal(None, cfg, 1, partition, ["f"], (None, None), RecordDict())
    assert plan.dataset is partition and plan.reward_funcs == ["f"] and plan.measure is None


# --- rollout signals --------------------------------------------------------------------


def test_recorder_sums_the_reward_functions_per_rollout_and_skips_the_first_step():
    def accuracy(completions, task, **_):
        return [1.0 if c == "right" else 0.0 if t != "src" else None for c, t in zip(completions, task)]

    def fmt(completions, **_):
        return [0.5] * len(completions)

    recorder = RolloutRecorder([accuracy, fmt], skip_steps=1)
    wrapped_accuracy, wrapped_fmt = recorder.reward_funcs
    assert wrapped_accuracy.__name__ == "accuracy"  # TRL logs per-function means by name
    for step, completions in [(0, ["right", "right", "right"]), (1, ["right", "wrong", "wrong"]),
                              (2, ["wrong", "right", "right"])]:
        kwargs = {"completions": completions, "task": ["add", "add", "mul"], "trainer_state": TrainerState(global_step=step)}
        assert wrapped_accuracy(**kwargs) == accuracy(**kwargs)
        wrapped_fmt(**kwargs)
    # steps 1 and 2 count: add = 1.5, 0.5, 0.5, 1.5 -> 1.0 over 4; mul = 0.5, 1.5 -> 1.0 over 2
    assert recorder.signals() == {"add": (1.0, 4), "mul": (1.0, 2)}
    everything = RolloutRecorder([accuracy, fmt], skip_steps=0)
    everything.rollouts = recorder.rollouts
    assert everything.signals()["add"] == (pytest.approx(7 / 6), 6)


def test_recorder_keeps_the_last_step_when_there_are_fewer_steps_than_skipped():
    recorder = RolloutRecorder([lambda completions, **_: [2.0] * len(completions)], skip_steps=5)
    recorder.reward_funcs[0](completions=["x", "y"], task=["t", "t"], trainer_state=TrainerState(global_step=0))
    assert recorder.signals() == {"t": (2.0, 2)}


def test_per_task_means_leave_out_unscored_rows():
    assert per_task_means(["a", "b", "a", "b"], [1.0, None, 3.0, 4.0]) == {"a": (2.0, 2), "b": (4.0, 1)}


# --- reward ranges and the per-client learning rate --------------------------------------


def test_reward_ranges_follow_scale_and_format_reward():
    cfg = cfg_with("data.reward_scale={sorting = 2.0}", "data.format_reward=0.5")
    assert reward_ranges(cfg) == {"addition": (0.0, 1.5), "multiplication": (0.0, 10.5), "sorting": (0.0, 10.5),
                                  "countdown": (-1.0, 1.5)}


def test_client_lr_scale_scales_one_clients_learning_rate():
    cfg = cfg_with('federation.client_lr_scale={"0" = 0.0, "2" = 0.5}')
    assert [lr_scale(cfg, pid) for pid in range(4)] == [0.0, 1.0, 0.5, 1.0]


@pytest.mark.parametrize(("override", "key"), [
    ('federation.client_lr_scale={"7" = 0.0}', "federation.client_lr_scale.7"),
    ('federation.client_lr_scale={"0" = -1.0}', "federation.client_lr_scale.0"),
    (("strategy.gain=delta", "strategy.signal=train-reward"), "strategy.gain"),
])
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
    held = {"a": ["addition", "countdown"], "b": ["multiplication"], "c": ["sorting", "countdown", "addition"]}
    rng = np.random.default_rng(0)
    for rnd in range(1, 6):
        server_replies, client_replies = [], []
        for cid, tasks in held.items():
            after = {t: (float(rng.uniform(*reward_ranges(server_cfg)[t])), int(rng.integers(1, 9))) for t in tasks}
            server_side = signal_metrics(server_cfg, RecordDict(), after, None)
            client_side = signal_metrics(client_cfg, states[cid], after, None)
            assert set(client_side) == {"gain"}  # raw rewards stay with the client
            server_replies.append(_with_signals(reply(cid, {"w": [1.0]}, sizes[cid], 0.0), server_side))
            client_replies.append(_with_signals(reply(cid, {"w": [1.0]}, sizes[cid], 0.0), client_side))
        for strategy, replies in ((server, server_replies), (client, client_replies)):
            strategy.global_arrays = {"w": np.zeros(1, dtype=np.float32)}
            strategy.aggregate_train(rnd, replies)
        np.testing.assert_allclose([r["weight"] for r in client.ledger], [r["weight"] for r in server.ledger], rtol=1e-12)
        assert [r["gain"] for r in client.ledger] == pytest.approx([r["gain"] for r in server.ledger], rel=1e-12)
        if rnd >= 3:  # the gains matter by now: not FedAvg's weights
            assert not np.allclose([r["weight"] for r in server.ledger], np.array([30, 50, 20]) / 100)
    assert HISTORY_KEY in states["a"].config_records and client.history == {}


def _with_signals(message, items):
    message.content[SIGNALS_RECORD_KEY] = ConfigRecord(items)
    return message
