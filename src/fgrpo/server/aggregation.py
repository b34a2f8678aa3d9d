"""One round's aggregation step, guarded: too few usable replies, a strategy that refuses
them, or an aggregate that is not finite all leave the global adapter (and the strategy's
state) as they were, and the round says why."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from flwr.app import Message
from flwr.serverapp.strategy import Strategy

from fgrpo.core.config import Config
from fgrpo.models.transport import from_arrayrecord
from fgrpo.server.screening import ReplyScreen


@dataclass
class RoundOutcome:
    state: dict[str, np.ndarray]  # the global adapter after the round
    aggregated: bool
    reason: str | None = None  # why not, when not aggregated
    train: dict[str, Any] = field(default_factory=dict)
    ledger: list[dict[str, Any]] = field(default_factory=list)


def reply_screen(
    strategy: Strategy,
    cfg: Config,
    sent: dict[str, np.ndarray],
    personal: dict[str, np.ndarray] | None = None,
) -> ReplyScreen:
    """The round's screening rules: the strategy's extra records and checks, the run's norm rule,
    and (fedsa) the B tensors a client's own B must match."""
    return ReplyScreen(
        sent,
        extra_arrays=getattr(strategy, "reply_arrays", ()),
        check_reply=getattr(strategy, "check_reply", None),
        max_norm_ratio=cfg.federation.max_norm_ratio,
        personal=personal,
    )


def aggregate_round(
    strategy: Strategy,
    rnd: int,
    replies: list[Message],
    state: dict[str, np.ndarray],
    min_clients: int,
) -> RoundOutcome:
    """Hand the screened replies to the strategy when at least ``min_clients`` are usable."""
    if len(replies) < min_clients:
        return RoundOutcome(
            state,
            False,
            f"{len(replies)} usable replies, fewer than federation.min_clients = {min_clients}",
        )
    before = copy.deepcopy(
        vars(strategy)
    )  # restored if the round is discarded (FedOpt moments, histories, c)

    def discard(reason: str) -> RoundOutcome:
        vars(strategy).clear()
        vars(strategy).update(before)
        return RoundOutcome(state, False, reason)

    try:
        arrays, metrics = strategy.aggregate_train(rnd, replies)
    except ValueError as err:  # a strategy's refusal of its input, e.g. a reward it cannot weight
        return discard(f"strategy refused the replies: {err}")
    ledger = list(getattr(strategy, "ledger", []))
    train = dict(metrics) if metrics else {}
    if arrays is None:  # local-only keeps the global adapter by design; others took no reply
        return RoundOutcome(
            state,
            bool(ledger),
            None if ledger else "the strategy aggregated no reply",
            train,
            ledger,
        )
    new = from_arrayrecord(arrays)
    if set(new) != set(state) or any(
        new[k].shape != state[k].shape or not np.all(np.isfinite(new[k])) for k in new
    ):
        return discard("the aggregate is not finite (or not shaped like the adapter): discarded")
    return RoundOutcome(new, True, None, train, ledger)
