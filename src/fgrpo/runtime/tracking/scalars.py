"""A metrics.jsonl line as the flat scalars a tracker plots: one name per curve, step = round.

Names are ``section/what`` (TensorBoard and the W&B UI group a chart panel per section):

- ``eval/<task>``, ``eval_se/<task>`` (``macro`` included): the global model's greedy accuracy and
  its binomial standard error; ``local/<task>``, ``local/own-mix``: the mean of the clients' own
  models where the run scores those (local-only, fedsa);
- ``reward/normalised`` and ``reward/<task>``: the round's reward as a fraction of each task's
  declared range (fgrpo.server.round_reward);
- ``train/<metric>``: the clients' aggregated training metrics (timings, update norm, ...);
- ``bytes/sent``, ``bytes/received``, ``round/seconds``, ``round/failures``;
- ``client/<id>/<what>``: each client's weight, gain, baseline, reward, examples and update norm,
  and per task (``client/<id>/<task>/signal|baseline|gain``) what FGRPO's rule saw.

``client_steps`` gives the local-step curves of ``tracking.client_steps`` (``client-steps/<id>/…``).
"""

from __future__ import annotations

import math
import re
from typing import Any

CLIENT_FIELDS = ("weight", "gain", "baseline", "reward", "num-examples", "update-norm")
TASK_FIELDS = ("signal", "baseline", "gain")
UNSAFE = re.compile(r"[^A-Za-z0-9_\-./ ]")  # MLflow's rule for metric names, the strictest


def name(*parts: str) -> str:
    return UNSAFE.sub("_", "/".join(parts))


def numbers(prefix: str, table: dict[str, Any] | None) -> dict[str, float]:
    """``table``'s finite numbers (not flags) under ``prefix/<key>``."""
    out = {}
    for key, value in (table or {}).items():
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            out[name(prefix, key)] = float(value)
    return out


def round_scalars(record: dict[str, Any]) -> dict[str, float]:
    out = {**numbers("eval", record.get("eval")), **numbers("eval_se", record.get("eval_se"))}
    local = (record.get("local") or {}).get("mean") or {}
    out.update(numbers("local", {**local.get("global", {}), "own-mix": local.get("own-mix")}))
    reward = record.get("reward") or {}
    out.update(numbers("reward", {"normalised": reward.get("normalised")}))
    out.update(numbers("reward", reward.get("by_task_normalised")))
    out.update(numbers("train", record.get("train")))
    out.update(numbers("bytes", record.get("bytes")))
    if "seconds" in record:
        out.update(numbers("round", {"seconds": record["seconds"]}))
    if "failures" in record:
        out[name("round", "failures")] = float(len(record["failures"]))
    for client in record.get("clients", []):
        cid = str(client["client-id"])
        out.update(numbers(name("client", cid), {k: client.get(k) for k in CLIENT_FIELDS}))
        for task, seen in (client.get("tasks") or {}).items():
            fields = {k: seen.get(k) for k in TASK_FIELDS}
            out.update(numbers(name("client", cid, task), fields))
    return out


def client_steps(
    record: dict[str, Any], steps_per_round: int
) -> list[tuple[int, dict[str, float]]]:
    """(global local step, scalars) of every client's local steps this round: step
    (round - 1) · K + i for its i-th step, so a client's curve runs on across rounds."""
    by_step: dict[int, dict[str, float]] = {}
    first = (record["round"] - 1) * steps_per_round
    for cid, series in sorted((record.get("client-steps") or {}).items()):
        for metric, values in series.items():
            for i, value in enumerate(values, start=1):
                step = by_step.setdefault(first + i, {})
                step.update(numbers(name("client-steps", cid), {metric: value}))
    return sorted(by_step.items())
