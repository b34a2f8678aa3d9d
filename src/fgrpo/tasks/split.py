"""The fixed train/test split of every procedural task's problem space.

A prompt belongs to the test share when a stable hash of its normalised text
falls below ``TEST_SHARE``. The split depends on nothing else (no seed, no run,
no config), so the prompts evaluation uses are never seen by the tiny model's
SFT nor by any RL training pool, whichever seed drew them.
"""

from __future__ import annotations

import hashlib

TEST_SHARE = 0.2  # of each task's problem space; >= 2,000 prompts at the default difficulty
_BUCKETS = 10_000


def normalised(prompt: str) -> str:
    """Case and whitespace do not make a new problem."""
    return " ".join(prompt.lower().split())


def in_test_share(prompt: str) -> bool:
    digest = hashlib.sha256(normalised(prompt).encode()).digest()
    return int.from_bytes(digest[:8], "big") % _BUCKETS < TEST_SHARE * _BUCKETS


def share_of(prompt: str) -> str:
    return "test" if in_test_share(prompt) else "train"
