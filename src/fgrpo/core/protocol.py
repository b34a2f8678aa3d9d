"""The wire protocol: every record and key the server and a client exchange, in one place.

A round is one Flower ``Message`` each way. Everything in it is numeric arrays and scalars (no
pickle); the client and the server import their keys from here, never from each other.

Server to client (the train message):

| record        | kind         | key                    | what                                         |
|---------------|--------------|------------------------|----------------------------------------------|
| ``arrays``    | ArrayRecord  | (adapter tensor names) | the global LoRA adapter θ (fedsa: its A only) |
| ``config``    | ConfigRecord | ``server-round``       | the round (Flower's own key)                 |
|               |              | ``fgrpo-config``       | the run's resolved config, as JSON           |
|               |              | ``learning-rate``      | this round's local rate (the server's schedule) |
|               |              | ``client-state``       | JSON {run, sessions, dir}: where state lives |
|               |              | ``fgrpo-signal``       | FGRPO: the signal to measure (train-reward, probe) |
|               |              | ``proximal-mu``        | FedProx: μ of the proximal term (Flower's key) |
|               |              | ``keep-local-model``   | local-only: train the client's own adapter   |
|               |              | ``scaffold-accepted``  | SCAFFOLD: JSON {client: last aggregated round} |
|               |              | ``clipping_norm``      | client-side DP: the clip (Flower's key)      |
|               |              | ``send-personal-b``    | fedsa, evaluation rounds: reply with B_k too |
| ``scaffold-c``| ArrayRecord  | (adapter tensor names) | SCAFFOLD: the server control variate c       |
| ``base-residual`` | ArrayRecord | (adapted layer names) | exact LoRA aggregation: R, the base weights' |
|               |              |                        | offset (W0 + R), the same on every client    |

Client to server (the reply):

| record             | kind         | key                      | what                                 |
|--------------------|--------------|--------------------------|--------------------------------------|
| ``arrays``         | ArrayRecord  | (adapter tensor names)   | the client's adapter after training  |
| ``metrics``        | MetricRecord | ``num-examples``         | n_k, the training partition's size   |
|                    |              | ``reward``, ``reward-first``, ``reward-last`` | rollouts' mean reward |
|                    |              | ``completion-length``, ``train-seconds``, ``generate-seconds`` | |
| ``client``         | ConfigRecord | ``client-id``            | the stable client id                 |
|                    |              | ``error``                | set instead of a result when training failed |
| ``task-rewards``   | ConfigRecord | ``mean/<task>``, ``rollouts/<task>`` | rollouts' mean total reward per task |
| ``fgrpo-signals``  | ConfigRecord | ``signal/<task>``, ``rollouts/<task>`` | FGRPO's p_{k,τ} (probe rows) |
|                    |              | ``signal-before/<task>`` | the probe on the received model      |
|                    |              | ``gain``                 | g_k (``strategy.baseline_at = "client"``) |
| ``task-mix``       | ConfigRecord | ``<task>``               | local-only, fedsa: examples per task |
| ``personal-b``     | ArrayRecord  | (lora_B tensor names)    | fedsa, when asked: the client's own B, |
|                    |              |                          | for the server's evaluation only     |
| ``scaffold-delta-c`` | ArrayRecord | (adapter tensor names)  | SCAFFOLD: Δc_i                       |
| ``client-steps``   | ConfigRecord | (TRL's logged keys)      | tracking.client_steps: each key's value |
|                    |              |                          | at every local step of the round     |

Per-task values travel in ConfigRecords of their own because Flower requires every reply's
MetricRecord to have the same keys, and clients hold different tasks.

A deployed node's own settings (``--node-config``): ``partition-id``, ``client-id``, ``state-dir``,
``data-config``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from fgrpo.core.fgrpo_rule import TaskSignal

# --- server to client: the round's ConfigRecord ("config") ----------------------------------
CONFIG_KEY = "fgrpo-config"
LEARNING_RATE_KEY = "learning-rate"
CLIENT_STATE_KEY = "client-state"
SIGNAL_REQUEST_KEY = "fgrpo-signal"
PROXIMAL_MU_KEY = "proximal-mu"  # Flower's FedProx key
KEEP_LOCAL_KEY = "keep-local-model"
ACCEPTED_KEY = "scaffold-accepted"
SERVER_VARIATE_KEY = "scaffold-c"  # an ArrayRecord beside "arrays"
BASE_RESIDUAL_KEY = "base-residual"  # an ArrayRecord beside "arrays" (model.lora_aggregation)
SEND_PERSONAL_KEY = "send-personal-b"

# --- client to server: the reply's records --------------------------------------------------
CLIENT_RECORD = "client"
CLIENT_ID_KEY = "client-id"
CLIENT_ERROR_KEY = "error"
TASK_REWARDS_KEY = "task-rewards"
SIGNALS_RECORD_KEY = "fgrpo-signals"
GAIN_KEY = "gain"
TASK_MIX_KEY = "task-mix"
DELTA_VARIATE_KEY = "scaffold-delta-c"
PERSONAL_B_KEY = "personal-b"
CLIENT_STEPS_KEY = "client-steps"

# --- a deployed node's config ---------------------------------------------------------------
PARTITION_ID_NODE_KEY = "partition-id"
CLIENT_ID_NODE_KEY = "client-id"
STATE_DIR_NODE_KEY = "state-dir"
DATA_CONFIG_NODE_KEY = "data-config"

MEAN, ROLLOUTS = "mean/", "rollouts/"
SIGNAL_PREFIX, ROLLOUTS_PREFIX, BEFORE_PREFIX = "signal/", "rollouts/", "signal-before/"


def client_state_record(info: dict[str, Any], clients_dir: Path | None) -> str:
    """The server's side of ``client-state``: run id, session history and (simulation) the run's
    clients directory."""
    return json.dumps(
        {**info, "dir": None if clients_dir is None else str(clients_dir)}, sort_keys=True
    )


def task_reward_record(means: dict[str, tuple[float, int]]) -> dict[str, float]:
    """A client's per-task (mean total reward, rollouts) as ``task-rewards`` holds them."""
    return {
        **{MEAN + t: float(m) for t, (m, _) in means.items()},
        **{ROLLOUTS + t: float(n) for t, (_, n) in means.items()},
    }


def read_task_rewards(record: Any) -> dict[str, tuple[float, float]]:
    """{task: (mean, rollouts)} from a reply's ``task-rewards``; ValueError for a malformed or
    non-finite one."""
    if record is None:
        return {}
    out = {}
    for key, value in record.items():
        if key.startswith(MEAN):
            task = key[len(MEAN) :]
            mean, rollouts = float(value), float(record.get(ROLLOUTS + task, math.nan))
            if not (math.isfinite(mean) and math.isfinite(rollouts) and rollouts > 0):
                raise ValueError(
                    f"task reward of {task!r} is not a finite mean over > 0 rollouts: "
                    f"{mean}, {rollouts}"
                )
            out[task] = (mean, rollouts)
    return out


def task_metrics(
    signals: dict[str, tuple[float, int]], before: dict[str, tuple[float, int]] | None = None
) -> dict[str, float]:
    """Encode FGRPO's {task: (mean reward, rollouts)} (and the probe on the received model) as
    ``fgrpo-signals`` items."""
    out: dict[str, float] = {}
    for task, (p, n) in signals.items():
        out[SIGNAL_PREFIX + task], out[ROLLOUTS_PREFIX + task] = float(p), int(n)
        if before is not None and task in before:
            out[BEFORE_PREFIX + task] = float(before[task][0])
    return out


def task_signals(
    metrics: dict[str, float], ranges: dict[str, tuple[float, float]], client_id: str
) -> dict[str, TaskSignal]:
    """Decode a reply's ``fgrpo-signals``, each with its task's declared reward range."""
    signals = {}
    for key, p in metrics.items():
        if not key.startswith(SIGNAL_PREFIX):
            continue
        task = key[len(SIGNAL_PREFIX) :]
        n = metrics.get(ROLLOUTS_PREFIX + task, float("nan"))
        before = metrics.get(BEFORE_PREFIX + task)
        if not all(math.isfinite(v) for v in (p, n, 0.0 if before is None else before)):
            raise ValueError(
                f"client {client_id} sent a non-finite signal or rollout count for task {task!r}"
            )
        r_min, r_max = ranges.get(task, (float("nan"), float("nan")))
        signals[task] = TaskSignal(p=p, n=n, r_min=r_min, r_max=r_max, p_before=before)
    if not signals:
        raise ValueError(f"client {client_id} sent no '{SIGNAL_PREFIX}<task>' metrics for FGRPO")
    return signals


def array_bytes(content: Any) -> int:
    """Bytes of every array a message's RecordDict carries (what a round puts on the wire, beside
    the few scalars of its config and metric records)."""
    return sum(len(a.data) for record in content.array_records.values() for a in record.values())


def read_task_mix(record: Any) -> dict[str, int]:
    """{task: examples} from a reply's ``task-mix``; ValueError unless it maps tasks to counts."""
    if (
        record is None
        or not record
        or any(isinstance(n, bool) or not isinstance(n, int) or n < 0 for n in record.values())
    ):
        raise ValueError(f"'{TASK_MIX_KEY}' must map tasks to example counts, got {record}")
    return {str(task): int(n) for task, n in record.items()}
