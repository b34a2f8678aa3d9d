"""The learning rate of each round, set by the server (``federation.lr_schedule``).

Local training runs at a constant rate within a round; a schedule across
rounds is the server's choice and travels in the round's config. The
``centralized`` reference follows the same shape over its round-equivalents,
so federated and centralized runs of the same total steps are comparable.
"""

from __future__ import annotations

import math

SCHEDULES = ("constant", "cosine")


def round_learning_rate(base_lr: float, schedule: str, server_round: int, rounds: int) -> float:
    """Learning rate for round ``server_round`` (1-based) of ``rounds``.

    ``cosine`` starts at ``base_lr`` in round 1 and decays by round towards 0 (never reaching it,
    so the last round still learns).
    """
    if schedule == "constant":
        return base_lr
    if schedule == "cosine":
        return base_lr * 0.5 * (1.0 + math.cos(math.pi * (server_round - 1) / rounds))
    raise ValueError(
        f"federation.lr_schedule: unknown schedule {schedule!r}; known: {', '.join(SCHEDULES)}"
    )
