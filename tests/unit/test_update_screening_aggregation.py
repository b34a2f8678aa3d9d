"""Strategy-specific screening and the guarded aggregation step (fgrpo.server.aggregation), and
whole runs in which a client, or every client, fails."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from flwr.app import (
    Array,
    ArrayRecord,
    ConfigRecord,
)

from fgrpo.core.protocol import (
    DELTA_VARIATE_KEY,
    SIGNALS_RECORD_KEY,
    TASK_MIX_KEY,
    TASK_REWARDS_KEY,
)
from fgrpo.runtime.configs import load_config
from fgrpo.server.aggregation import aggregate_round, reply_screen
from fgrpo.server.screening import screen_replies
from fgrpo.server.strategies import build_strategy

from ..data_helpers import gsm8k_dir
from ..screening_helpers import SENT, U, configured, f32, fedavg, good

ROOT = Path(__file__).resolve().parents[2]


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
