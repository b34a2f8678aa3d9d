"""Server-side screening of client replies before any strategy sees them.

A reply is kept only when it is a well-formed, finite, plausibly sized update; anything
else becomes a failure ``{"node", "client-id", "kind", "reason"}`` in the round's
metrics line, and the strategy never sees it. The checks, in order:

- error replies (the ClientApp raised, or the SuperLink answers for a lost node) and
  replies that say the client failed (``client.error``, see fgrpo.client.failure);
- identity: a non-empty string ``client-id``, once per round;
- metrics: ``num-examples`` finite and > 0, every metric a finite number;
- every ArrayRecord (the adapter ``arrays`` and strategy records such as SCAFFOLD's
  Δc): exactly the sent adapter's tensor names and shapes, in the transport's dtypes
  (float32, or bfloat16 bit patterns as int16), finite, with ‖·‖ (in float64) inside the
  float32 range; a record the strategy does not expect is refused;
- the strategy's own check of its records (FGRPO's per-task signals, local-only's task mix);
- the round's update norms ‖θ_k − θ‖: above ``max_norm_ratio`` × the median of the
  round's otherwise valid replies is refused. Only from ``MEDIAN_RULE_MIN_REPLIES``
  replies on: with two, the median is their mean and no update exceeds twice it, and a
  single reply has nothing to be compared with. A zero median (most clients did not
  move) gives no scale either, so the rule then abstains.

Kept replies are rebuilt: the adapter as fp32 θ_k (a lossy reply carries θ_k − θ), one
MetricRecord ``metrics`` with ``update-norm`` added and only the keys every kept reply
has (Flower averages metrics key by key and refuses unequal key sets).
"""

from __future__ import annotations

from collections.abc import Callable
from logging import WARNING
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, Message, MetricRecord, RecordDict
from flwr.supercore import log

from fgrpo.core.protocol import CLIENT_ERROR_KEY, PERSONAL_B_KEY, TASK_MIX_KEY, read_task_mix
from fgrpo.models.transport import BF16_SUFFIX, DELTA_SUFFIX, from_arrayrecord, to_arrayrecord
from fgrpo.server.strategies.weighted import ClientReport, read_report

ADAPTER_KEY, METRICS_KEY, CLIENT_KEY = "arrays", "metrics", "client"
MEDIAN_RULE_MIN_REPLIES = 3
FLOAT32_MAX = float(np.finfo(np.float32).max)


class Rejected(ValueError):
    """What is wrong with one reply."""


def decode_tensors(
    record: ArrayRecord, sent: dict[str, np.ndarray], name: str, relative: bool
) -> dict[str, np.ndarray]:
    """One ArrayRecord as fp32 tensors checked against ``sent``; ``relative``: ``::delta`` keys add
    ``sent`` back."""
    out: dict[str, np.ndarray] = {}
    for key, array in record.items():
        tensor, wire = key, np.dtype(np.float32)
        if tensor.endswith(BF16_SUFFIX):
            tensor, wire = tensor[: -len(BF16_SUFFIX)], np.dtype(np.int16)
        delta = relative and tensor.endswith(DELTA_SUFFIX)
        tensor = tensor[: -len(DELTA_SUFFIX)] if delta else tensor
        if tensor not in sent:
            raise Rejected(f"{name}: unknown tensor {tensor!r}")
        if tensor in out:
            raise Rejected(f"{name}: tensor {tensor!r} sent twice")
        value = array.numpy()
        if value.dtype != wire:
            raise Rejected(f"{name}: {tensor!r} has dtype {value.dtype}, expected {wire}")
        if value.shape != sent[tensor].shape:
            raise Rejected(
                f"{name}: {tensor!r} has shape {value.shape}, expected {sent[tensor].shape}"
            )
        value = next(iter(from_arrayrecord(ArrayRecord({key: array})).values()))
        out[tensor] = (
            (sent[tensor].astype(np.float64) + value).astype(np.float32) if delta else value
        )
        if not np.all(np.isfinite(out[tensor])):
            raise Rejected(f"{name}: non-finite values in {tensor!r}")
    missing = sorted(set(sent) - set(out))
    if missing:
        raise Rejected(
            f"{name}: missing tensor {missing[0]!r}"
            + (f" and {len(missing) - 1} more" if len(missing) > 1 else "")
        )
    return out


def norm64(tensors: dict[str, np.ndarray], minus: dict[str, np.ndarray] | None = None) -> float:
    """‖tensors − minus‖ in float64: 3e38 per element is finite in float32 but its norm is not."""
    total = 0.0
    for key, value in tensors.items():
        diff = value.astype(np.float64) - (0.0 if minus is None else minus[key].astype(np.float64))
        total += float(np.square(diff).sum())
    return float(np.sqrt(total))


def check_norm(norm: float, name: str) -> None:
    if not np.isfinite(norm) or norm > FLOAT32_MAX:
        raise Rejected(f"{name}: norm {norm:.3g} is outside the float32 range")


def claimed_client_id(content: RecordDict) -> str | None:
    """The reply's ``client-id`` when it is a non-empty string (a failure is named with it)."""
    client = content.config_records.get(CLIENT_KEY)
    value = None if client is None else client.get("client-id")
    return value if isinstance(value, str) and value else None


def screen_metrics(content: RecordDict) -> MetricRecord:
    if METRICS_KEY not in content.metric_records or len(content.metric_records) != 1:
        raise Rejected(
            f"expected one MetricRecord {METRICS_KEY!r}, got {sorted(content.metric_records)}"
        )
    metrics = content.metric_records[METRICS_KEY]
    for key, value in metrics.items():
        if isinstance(value, list) or not np.isfinite(float(value)):
            raise Rejected(f"metric {key!r} is not a finite number: {value!r}")
    if "num-examples" not in metrics:
        raise Rejected("metric 'num-examples' missing")
    if not float(metrics["num-examples"]) > 0:
        raise Rejected(f"num-examples must be > 0, got {metrics['num-examples']}")
    return MetricRecord(dict(metrics))


class ReplyScreen:
    """The rules for one round: the adapter sent, the ArrayRecords a strategy expects besides it
    (None: any, each checked like the adapter), the strategy's own check of a reply (raises
    ValueError), and the median norm rule (``max_norm_ratio`` 0: off)."""

    def __init__(
        self,
        sent: dict[str, np.ndarray],
        extra_arrays: tuple[str, ...] | None = None,
        check_reply: Callable[[RecordDict, ClientReport], None] | None = None,
        max_norm_ratio: float = 0.0,
        personal: dict[str, np.ndarray] | None = None,
    ) -> None:
        self.sent, self.extra_arrays, self.check_reply = sent, extra_arrays, check_reply
        self.max_norm_ratio = max_norm_ratio
        self.personal = personal  # fedsa: the B tensors a personal-b record must match

    def rebuild(self, content: RecordDict) -> tuple[RecordDict, ClientReport, float]:
        """The reply rebuilt for the strategies, its report and its update norm; Rejected if
        unusable."""
        client_id = claimed_client_id(content)
        if client_id is None:
            raise Rejected("no client-id (a non-empty string in the 'client' ConfigRecord)")
        metrics = screen_metrics(content)
        if ADAPTER_KEY not in content.array_records:
            raise Rejected(f"no adapter ArrayRecord {ADAPTER_KEY!r}")
        own = PERSONAL_B_KEY if self.personal is not None else None
        extra = [k for k in content.array_records if k not in (ADAPTER_KEY, own)]
        expected = list(self.extra_arrays) if self.extra_arrays is not None else extra
        unexpected, absent = sorted(set(extra) - set(expected)), sorted(set(expected) - set(extra))
        if unexpected or absent:
            raise Rejected(f"ArrayRecords: unexpected {unexpected}, missing {absent}")
        adapter = decode_tensors(content[ADAPTER_KEY], self.sent, "adapter", relative=True)
        norm = norm64(adapter, self.sent)
        check_norm(norm, "update")
        rebuilt = RecordDict({ADAPTER_KEY: to_arrayrecord(adapter, "fp32"), METRICS_KEY: metrics})
        for key in extra:  # strategy records that mirror the adapter, e.g. SCAFFOLD's Δc
            tensors = decode_tensors(content[key], self.sent, key, relative=False)
            check_norm(norm64(tensors), key)
            rebuilt[key] = to_arrayrecord(tensors, "fp32")
        if own in content.array_records:  # fedsa's B_k, for the server's evaluation only
            rebuilt[own] = to_arrayrecord(self.decode_personal(content), "fp32")
        for key, record in content.config_records.items():
            rebuilt[key] = record
        report = read_report(rebuilt)
        if not np.isfinite(report.reward):
            raise Rejected("metric 'reward' missing")  # a present one was checked with the others
        if self.check_reply is not None:
            self.check_reply(rebuilt, report)
        metrics["update-norm"] = norm
        return rebuilt, report, norm

    def decode_personal(self, content: RecordDict) -> dict[str, np.ndarray]:
        tensors = decode_tensors(
            content[PERSONAL_B_KEY], self.personal or {}, PERSONAL_B_KEY, False
        )
        check_norm(norm64(tensors), PERSONAL_B_KEY)
        try:
            read_task_mix(content.config_records.get(TASK_MIX_KEY))
        except ValueError as err:
            raise Rejected(str(err)) from None
        return tensors

    def screen(
        self, replies: list[Message], addressees: dict[str, int] | None = None
    ) -> tuple[list[Message], list[dict[str, Any]]]:
        """(kept replies, failures). ``addressees`` maps sent message ids to their node: an error
        reply for a lost node comes from the SuperLink, not from that node."""
        failures: list[dict[str, Any]] = []
        candidates: list[tuple[Message, ClientReport, float, int]] = []
        seen: dict[str, int] = {}
        for reply in replies:
            node = (addressees or {}).get(
                reply.metadata.reply_to_message_id, reply.metadata.src_node_id
            )
            fail = lambda kind, reason, cid=None, node=node: failures.append(  # noqa: E731
                {"node": node, "client-id": cid, "kind": kind, "reason": reason}
            )
            if reply.has_error():
                fail("error", reply.error.reason)
                continue
            client_id = claimed_client_id(reply.content)
            client = reply.content.config_records.get(CLIENT_KEY)
            if client is not None and CLIENT_ERROR_KEY in client:
                fail("error", str(client[CLIENT_ERROR_KEY]), client_id)
                continue
            try:
                rebuilt, report, norm = self.rebuild(reply.content)
                if report.client_id in seen:
                    raise Rejected(
                        f"client id {report.client_id!r} already replied this round (node {seen[report.client_id]})"
                    )
            except ValueError as err:  # Rejected, or a strategy's refusal
                fail("rejected", str(err), client_id)
                continue
            except Exception as err:  # noqa: BLE001 - whatever else breaks on a reply is the reply's fault
                fail("rejected", f"unreadable reply ({type(err).__name__}: {err})", client_id)
                continue
            seen[report.client_id] = node
            reply.content = rebuilt
            candidates.append((reply, report, norm, node))
        return common_metric_keys(self.median_rule(candidates, failures)), failures

    def median_rule(
        self,
        candidates: list[tuple[Message, ClientReport, float, int]],
        failures: list[dict[str, Any]],
    ) -> list[Message]:
        norms = [norm for _, _, norm, _ in candidates]
        median = float(np.median(norms)) if norms else 0.0
        if self.max_norm_ratio <= 0 or len(candidates) < MEDIAN_RULE_MIN_REPLIES or median <= 0:
            return [reply for reply, _, _, _ in candidates]
        kept = []
        for reply, report, norm, node in candidates:
            if norm > self.max_norm_ratio * median:
                failures.append(
                    {
                        "node": node,
                        "client-id": report.client_id,
                        "kind": "rejected",
                        "reason": f"update norm {norm:.3g} > {self.max_norm_ratio:g} x the round's median {median:.3g}",
                    }
                )
            else:
                kept.append(reply)
        return kept


def common_metric_keys(kept: list[Message]) -> list[Message]:
    """Keep only the metric keys every kept reply carries; say which were dropped."""
    if not kept:
        return kept
    common = set.intersection(*(set(m.content[METRICS_KEY].keys()) for m in kept))
    for message in kept:
        metrics = message.content[METRICS_KEY]
        dropped = sorted(set(metrics.keys()) - common)
        if dropped:
            log(
                WARNING,
                "metrics %s of client %s dropped: not every reply this round has them",
                dropped,
                claimed_client_id(message.content),
            )
            message.content[METRICS_KEY] = MetricRecord(
                {k: v for k, v in metrics.items() if k in common}
            )
    return kept


def missing_replies(
    addressees: dict[str, int], replies: list[Message], timeout: float | None
) -> list[dict[str, Any]]:
    """A failure for every node sent a message that got no reply (within ``timeout`` seconds)."""
    answered = {r.metadata.reply_to_message_id for r in replies}
    reason = f"no reply within federation.round_timeout = {timeout:g} s" if timeout else "no reply"
    return [
        {"node": node, "client-id": None, "kind": "timeout", "reason": reason}
        for message_id, node in addressees.items()
        if message_id not in answered
    ]


def screen_replies(
    replies: list[Message],
    sent: dict[str, np.ndarray],
    addressees: dict[str, int] | None = None,
    **rules: Any,
) -> tuple[list[Message], list[dict[str, Any]]]:
    """Screen one round's replies against the adapter ``sent`` (see ``ReplyScreen``)."""
    return ReplyScreen(sent, **rules).screen(replies, addressees)
