"""Server-side screening of client updates and the guarded aggregation step, without Ray:
real Flower replies through fgrpo.server.screening and fgrpo.server.aggregation."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from flwr.app import (
    Array,
    ArrayRecord,
    ConfigRecord,
    Context,
    Error,
    Message,
    MetricRecord,
    RecordDict,
)

from fgrpo.client.failure import reports_failure
from fgrpo.core.errors import ConfigError
from fgrpo.core.protocol import (
    DELTA_VARIATE_KEY,
    SIGNALS_RECORD_KEY,
    TASK_MIX_KEY,
    TASK_REWARDS_KEY,
)
from fgrpo.models.transport import BF16_SUFFIX, DELTA_SUFFIX, reply_record, to_arrayrecord
from fgrpo.runtime.configs import load_config
from fgrpo.server.aggregation import aggregate_round, reply_screen
from fgrpo.server.federation import name_failures
from fgrpo.server.screening import missing_replies, screen_replies
from fgrpo.server.strategies import build_strategy

from .data_helpers import gsm8k_dir
from .replies import reply
from .test_strategies import FakeGrid

ROOT = Path(__file__).resolve().parents[1]
SENT = {"w": np.array([0.0, 0.0], dtype=np.float32), "u": np.array([1.0], dtype=np.float32)}


def good(
    cid: str = "ok", w: tuple[float, float] = (0.5, -0.5), n: int = 10, **metrics: float
) -> Message:
    return reply(cid, {"w": list(w), "u": [1.0]}, n, 0.5, **metrics)


def with_arrays(**tensors: np.ndarray) -> Message:
    message = good("bad")
    message.content["arrays"] = ArrayRecord({k: Array(v) for k, v in tensors.items()})
    return message


def without(record: str, key: str | None = None) -> Message:
    message = good("bad")
    if key is None:
        del message.content[record]
    else:
        content = message.content[record]
        message.content[record] = type(content)({k: v for k, v in content.items() if k != key})
    return message


def with_metrics(**metrics: object) -> Message:
    message = good("bad")
    message.content["metrics"] = MetricRecord({"num-examples": 10, "reward": 0.5, **metrics})
    return message


def with_client(value: object) -> Message:
    message = good("bad")
    message.content["client"] = ConfigRecord({"client-id": value})
    return message


def two_metric_records() -> Message:
    message = good("bad")
    message.content["more"] = MetricRecord({"x": 1.0})
    return message


def duplicate_tensor() -> Message:
    message = good("bad")
    bf16 = reply_record({"w": np.ones(2, dtype=np.float32)}, SENT, "bf16")
    message.content["arrays"] = ArrayRecord(
        {**dict(message.content["arrays"].items()), **dict(bf16.items())}
    )
    return message


f32 = lambda *v: np.asarray(v, dtype=np.float32)  # noqa: E731
U = f32(1.0)

# (bad reply, the reason screening must give)
BAD_REPLIES: dict[str, tuple[Callable[[], Message], str]] = {
    "no adapter": (lambda: without("arrays"), "no adapter ArrayRecord 'arrays'"),
    "unknown tensor": (
        lambda: with_arrays(w=f32(1, 1), u=U, v=f32(1)),
        "adapter: unknown tensor 'v'",
    ),
    "missing tensor": (lambda: with_arrays(w=f32(1, 1)), "adapter: missing tensor 'u'"),
    "wrong shape": (lambda: with_arrays(w=f32(1, 1, 1), u=U), "'w' has shape (3,), expected (2,)"),
    "int dtype": (
        lambda: with_arrays(w=np.array([1, 1]), u=U),
        "'w' has dtype int64, expected float32",
    ),
    "float64": (
        lambda: with_arrays(w=np.array([1.0, 1.0]), u=U),
        "'w' has dtype float64, expected float32",
    ),
    "bf16 key, fp32 bits": (
        lambda: with_arrays(**{"w" + DELTA_SUFFIX + BF16_SUFFIX: f32(1, 1)}, u=U),
        "'w' has dtype float32, expected int16",
    ),
    "tensor twice": (duplicate_tensor, "adapter: tensor 'w' sent twice"),
    "NaN": (lambda: with_arrays(w=f32(np.nan, 0), u=U), "adapter: non-finite values in 'w'"),
    "Inf": (lambda: with_arrays(w=f32(0, -np.inf), u=U), "adapter: non-finite values in 'w'"),
    "3e38": (
        lambda: with_arrays(w=f32(3e38, 3e38), u=U),
        "update: norm 4.24e+38 is outside the float32 range",
    ),
    "no num-examples": (
        lambda: without("metrics", "num-examples"),
        "metric 'num-examples' missing",
    ),
    "no reward": (lambda: without("metrics", "reward"), "metric 'reward' missing"),
    "same client twice": (lambda: good("fine"), "client id 'fine' already replied this round"),
    "negative num-examples": (
        lambda: with_metrics(**{"num-examples": -5}),
        "num-examples must be > 0, got -5",
    ),
    "NaN reward": (
        lambda: with_metrics(reward=float("nan")),
        "metric 'reward' is not a finite number",
    ),
    "list metric": (
        lambda: with_metrics(extra=[1.0, 2.0]),
        "metric 'extra' is not a finite number",
    ),
    "two MetricRecords": (
        two_metric_records,
        "expected one MetricRecord 'metrics', got ['metrics', 'more']",
    ),
    "no client id": (lambda: without("client"), "no client-id"),
    "numeric client id": (lambda: with_client(7), "no client-id"),
    "empty client id": (lambda: with_client(""), "no client-id"),
    "unexpected ArrayRecord": (
        lambda: _extra_record(),
        "ArrayRecords: unexpected ['stowaway'], missing []",
    ),
}


def _extra_record() -> Message:
    message = good("bad")
    message.content["stowaway"] = ArrayRecord({"w": Array(f32(0, 0)), "u": Array(U)})
    return message


def configured(*overrides: str):
    """A registry strategy that has sent SENT to 2 nodes."""
    strategy = build_strategy(load_config(None, ["federation.num_clients=4", *overrides]))
    good("warm-up")  # gives the test process a Flower task identity
    list(
        strategy.configure_train(
            1, to_arrayrecord(SENT), ConfigRecord({"fgrpo-config": "{}"}), FakeGrid(2)
        )
    )
    return strategy


def fedavg():
    return configured("strategy.name=fedavg")


@pytest.mark.parametrize("case", sorted(BAD_REPLIES))
def test_a_bad_reply_is_rejected_with_its_reason_and_the_good_one_kept(case):
    make_bad, reason = BAD_REPLIES[case]
    strategy = fedavg()
    kept, failures = reply_screen(strategy, load_config(None, []), SENT).screen(
        [good("fine"), make_bad()]
    )
    assert [m.content["client"]["client-id"] for m in kept] == ["fine"]
    assert len(failures) == 1 and failures[0]["kind"] == "rejected", failures
    assert reason in failures[0]["reason"]
    outcome = aggregate_round(strategy, 1, kept, SENT, min_clients=1)
    assert outcome.aggregated and [row["client-id"] for row in outcome.ledger] == ["fine"]


def test_when_every_reply_is_rejected_the_global_adapter_and_the_strategy_stay_as_they_were():
    strategy = fedavg()
    before = json.dumps(strategy.state_dict())
    replies = [
        make() for case, (make, _) in BAD_REPLIES.items() if case != "same client twice"
    ]  # alone, it is fine
    kept, failures = reply_screen(strategy, load_config(None, []), SENT).screen(replies)
    assert kept == [] and len(failures) == len(replies) >= 12
    assert all(f["kind"] == "rejected" and f["reason"] for f in failures)
    outcome = aggregate_round(strategy, 1, kept, SENT, min_clients=1)
    assert not outcome.aggregated and outcome.state is SENT and outcome.ledger == []
    assert outcome.reason == "0 usable replies, fewer than federation.min_clients = 1"
    assert json.dumps(strategy.state_dict()) == before


def test_error_replies_and_client_reported_failures_are_named_by_node_and_client():
    raised = Message(Error(code=0, reason="<class 'ValueError'>:<'boom'>"), reply_to=good("x"))
    raised.metadata.__dict__["_src_node_id"] = 4
    reported = Message(
        RecordDict(
            {"client": ConfigRecord({"client-id": "client-2", "error": "ZeroDivisionError: x"})}
        ),
        dst_node_id=0,
        message_type="train",
    )
    reported.metadata.__dict__["_src_node_id"] = 5
    kept, failures = screen_replies([raised, reported], SENT)
    name_failures(failures, [raised, reported], {4: "client-1"})
    assert kept == []
    assert failures == [
        {
            "node": 4,
            "client-id": "client-1",
            "kind": "error",
            "reason": "<class 'ValueError'>:<'boom'>",
        },
        {"node": 5, "client-id": "client-2", "kind": "error", "reason": "ZeroDivisionError: x"},
    ]


def test_a_raising_client_replies_with_its_id_and_the_error():
    def train(msg: Message, context: Context) -> Message:
        raise ZeroDivisionError("reward function exploded")

    guarded = reports_failure(lambda context: context.node_config["client-id"])(train)
    context = Context(
        run_id=1,
        node_id=3,
        node_config={"client-id": "client-9"},
        state=RecordDict(),
        run_config={},
    )
    answer = guarded(good("x"), context)
    assert dict(answer.content["client"]) == {
        "client-id": "client-9",
        "error": "ZeroDivisionError: reward function exploded",
    }
    _, failures = screen_replies([answer], SENT)
    assert failures[0]["client-id"] == "client-9" and failures[0]["kind"] == "error"


def test_nodes_that_did_not_reply_in_time_are_timeouts():
    answered = good("a")
    answered.metadata.__dict__["_reply_to_message_id"] = "m1"
    failures = missing_replies({"m1": 1, "m2": 2}, [answered], 30.0)
    assert failures == [
        {
            "node": 2,
            "client-id": None,
            "kind": "timeout",
            "reason": "no reply within federation.round_timeout = 30 s",
        }
    ]


def norms_screen(norms: list[float], ratio: float = 10.0) -> tuple[list[str], list[dict]]:
    replies = [good(f"c{i}", (x, 0.0)) for i, x in enumerate(norms)]
    kept, failures = screen_replies(replies, SENT, max_norm_ratio=ratio)
    return [m.content["client"]["client-id"] for m in kept], failures


def test_an_update_far_above_the_rounds_median_norm_is_rejected_from_three_replies_on():
    kept, failures = norms_screen([1.0, 1.2, 50.0])
    assert kept == ["c0", "c1"]
    assert (
        failures[0]["client-id"] == "c2"
        and "update norm 50 > 10 x the round's median 1.2" in failures[0]["reason"]
    )
    assert norms_screen([1.0, 1.2, 50.0], ratio=0)[0] == ["c0", "c1", "c2"]  # 0: off
    assert norms_screen([1.0, 1000.0])[0] == ["c0", "c1"]  # two replies: no median to speak of
    assert norms_screen([0.0, 0.0, 5.0])[0] == ["c0", "c1", "c2"]  # zero median: no scale


def test_max_norm_ratio_below_one_is_a_config_error():
    with pytest.raises(ConfigError, match="federation.max_norm_ratio"):
        load_config(None, ["federation.max_norm_ratio=0.5"])


def test_an_extra_metric_key_does_not_crash_flowers_aggregation():
    strategy = fedavg()
    kept, failures = screen_replies([good("a"), good("b", foo=1.0)], SENT)
    assert not failures and all("foo" not in m.content["metrics"] for m in kept)
    outcome = aggregate_round(strategy, 1, kept, SENT, min_clients=2)
    assert outcome.aggregated and "update-norm" in outcome.train


def test_scaffold_control_variate_deltas_are_screened_like_the_adapter():
    strategy = configured("strategy.name=scaffold")
    cases = {"fine": f32(0.1, 0.1), "short": f32(0.1), "nan": f32(np.nan, 0)}
    replies = []
    for cid, delta in cases.items():
        message = good(cid)
        message.content[DELTA_VARIATE_KEY] = ArrayRecord({"w": Array(delta), "u": Array(U)})
        replies.append(message)
    replies.append(good("no-delta"))
    kept, failures = reply_screen(strategy, load_config(None, []), SENT).screen(replies)
    assert [m.content["client"]["client-id"] for m in kept] == ["fine"]
    assert [f["reason"] for f in failures] == [
        "scaffold-delta-c: 'w' has shape (1,), expected (2,)",
        "scaffold-delta-c: non-finite values in 'w'",
        "ArrayRecords: unexpected [], missing ['scaffold-delta-c']",
    ]


def test_fgrpo_signals_and_local_only_task_mix_are_screened_by_their_strategy():
    fgrpo = build_strategy(load_config(None, ["strategy.name=fgrpo", "federation.num_clients=4"]))
    bad_signal = good("s")
    bad_signal.content[SIGNALS_RECORD_KEY] = ConfigRecord(
        {"signal/addition": float("nan"), "rollouts/addition": 4}
    )
    _, failures = reply_screen(fgrpo, load_config(None, []), SENT).screen([bad_signal])
    assert "client s sent a non-finite signal" in failures[0]["reason"]
    local = build_strategy(
        load_config(None, ["strategy.name=local-only", "federation.num_clients=4"])
    )
    mixed = good("m")
    mixed.content[TASK_MIX_KEY] = ConfigRecord({"addition": 3})
    kept, failures = reply_screen(local, load_config(None, []), SENT).screen(
        [good("no-mix"), mixed]
    )
    assert [m.content["client"]["client-id"] for m in kept] == ["m"]
    assert "'task-mix' must map tasks to example counts" in failures[0]["reason"]


def test_a_non_finite_task_reward_is_refused_and_a_good_one_reaches_the_ledger():
    bad, fine = good("bad"), good("fine")
    bad.content[TASK_REWARDS_KEY] = ConfigRecord(
        {"mean/addition": float("inf"), "rollouts/addition": 4}
    )
    fine.content[TASK_REWARDS_KEY] = ConfigRecord({"mean/addition": 0.5, "rollouts/addition": 4})
    kept, failures = screen_replies([bad, fine], SENT)
    assert [m.content["client"]["client-id"] for m in kept] == ["fine"]
    assert "task reward of 'addition' is not a finite mean" in failures[0]["reason"]
    strategy = fedavg()
    outcome = aggregate_round(strategy, 1, kept, SENT, min_clients=1)
    assert outcome.ledger[0]["task-reward"] == {"addition": {"mean": 0.5, "rollouts": 4.0}}


def test_a_round_below_min_clients_leaves_the_adapter_unchanged():
    strategy = fedavg()
    kept, _ = screen_replies([good("a")], SENT)
    outcome = aggregate_round(strategy, 1, kept, SENT, min_clients=2)
    assert not outcome.aggregated and outcome.state is SENT
    assert outcome.reason == "1 usable replies, fewer than federation.min_clients = 2"


def test_a_non_finite_aggregate_is_discarded_and_the_strategy_state_restored():
    strategy = configured("strategy.name=fgrpo", "strategy.server_lr=1e38")
    kept, failures = screen_replies([good("a", (10.0, 10.0)), good("b", (20.0, 20.0))], SENT)
    assert not failures
    with np.errstate(over="ignore"):
        outcome = aggregate_round(strategy, 1, kept, SENT, min_clients=1)
    assert not outcome.aggregated and outcome.state is SENT and "not finite" in outcome.reason
    assert (
        strategy.history == {} and outcome.ledger == []
    )  # FGRPO's baselines did not learn from it


# --- whole runs: a client that raises every round, and a run in which every client does ----------

EXPLODING_REWARD = '''
import sys


def explode(completions, **kwargs):
    """Scores fine in the pre-run probe (Ray not started yet); raises in the simulation's workers."""
    if "ray" in sys.modules:
        raise RuntimeError("reward model offline")
    return [0.0] * len(completions)
'''


def faulty_run(tmp_path, tasks: str, partition: str) -> tuple[subprocess.CompletedProcess, Path]:
    """`fgrpo run` with 2 clients x 2 rounds where the data source 'bad' has a reward that raises in
    training."""
    reward = tmp_path / "explode.py"
    reward.write_text(EXPLODING_REWARD)
    source = gsm8k_dir(tmp_path / "bad", train=24, test=4)
    config = tmp_path / "faulty.toml"
    config.write_text(f'''
[data]
tasks = {tasks}
partition = "{partition}"
tasks_per_client = 1
train_size = 48
test_size = 4
[[data.sources]]
name = "bad"
path = "{source}"
prompt_column = "question"
rewards = ["{reward}:explode"]
''')
    out = tmp_path / "run"
    settings = [
        "model.name=tiny-random",
        "federation.num_clients=2",
        "federation.rounds=2",
        "federation.local_steps=1",
        "strategy.name=fedavg",
        "grpo.per_device_train_batch_size=4",
        "grpo.num_generations=2",
        "grpo.max_completion_length=8",
        "eval.max_new_tokens=8",
    ]
    cmd = [sys.executable, "-m", "fgrpo", "run", "--config", str(config), "--out", str(out)]
    for setting in settings:
        cmd += ["--set", setting]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600)
    return proc, out


def test_a_client_that_raises_every_round_is_logged_by_node_and_client_and_the_run_finishes(
    tmp_path,
):
    proc, out = faulty_run(
        tmp_path, '["sorting"]', "pathological"
    )  # one client holds 'bad', one 'sorting'
    assert proc.returncode == 0, proc.stderr[-2000:]
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["round"] for r in records] == [1, 2]
    for record in records:
        assert record["aggregated"] and len(record["clients"]) == 1
        (failure,) = record["failures"]
        assert failure["kind"] == "error" and "reward model offline" in failure["reason"]
        assert isinstance(failure["node"], int) and failure["client-id"] in {"client-0", "client-1"}
        assert failure["client-id"] != record["clients"][0]["client-id"]
    assert json.loads((out / "summary.json").read_text())["rounds_aggregated"] == 2


@pytest.mark.slow
def test_a_run_in_which_every_client_fails_exits_1_with_one_line_and_keeps_its_metrics(tmp_path):
    proc, out = faulty_run(tmp_path, "[]", "iid")  # every client holds only 'bad'
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("fgrpo:")]
    (error,) = errors  # one line, naming the first failure's client, reward function and its error
    assert error.startswith(
        "fgrpo: no round aggregated an update (every client failed or was rejected; first: node "
    )
    assert "explode.py:explode" in error and "reward model offline" in error
    assert error.endswith(f"the adapter is untrained; see 'failures' in {out / 'metrics.jsonl'}")
    assert "Traceback" not in proc.stderr.split(errors[0])[-1]
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [(r["aggregated"], len(r["failures"])) for r in records] == [(False, 2), (False, 2)]
    assert all(f["client-id"] in {"client-0", "client-1"} for r in records for f in r["failures"])
    assert json.loads((out / "summary.json").read_text())["rounds_aggregated"] == 0
