"""An example reward module for bring-your-own data: two plain TRL reward functions.

Nothing here depends on fgrpo. Copy the file next to your config, change it, and
name the functions by import path in ``[[data.sources]]``::

    rewards = ["my_rewards:correct_number", "my_rewards:shows_work"]

TRL calls each function with ``prompts``, ``completions``, ``completion_ids`` and
one keyword list per dataset column (``question``, ``answer``, ... for GSM8K); a
function returns one float per completion, or None to skip a sample.
"""

from __future__ import annotations

import re
from typing import Any

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def _text(completion: Any) -> str:
    if isinstance(completion, list):  # conversational: [{"role": "assistant", "content": ...}]
        return "".join(m.get("content", "") for m in completion)
    return str(completion)


def _last_number(text: str) -> float | None:
    found = _NUMBER.findall(text.replace("$", ""))
    if not found:
        return None
    try:
        return float(found[-1].replace(",", "").rstrip("."))
    except ValueError:
        return None


def correct_number(completions: list[Any], answer: list[str], **kwargs: Any) -> list[float | None]:
    """1.0 when the last number of the completion equals GSM8K's ``#### n``; None when the
    row carries no ``####`` answer (TRL then ignores the sample for this function)."""
    rewards: list[float | None] = []
    for completion, solution in zip(completions, answer, strict=False):
        if "####" not in solution:
            rewards.append(None)
            continue
        gold = _last_number(solution.split("####")[-1])
        got = _last_number(_text(completion))
        rewards.append(1.0 if gold is not None and got == gold else 0.0)
    return rewards


def shows_work(completions: list[Any], **kwargs: Any) -> list[float]:
    """A small shaping bonus (0.2) for writing at least one equation before the answer."""
    return [0.2 if "=" in _text(c) else 0.0 for c in completions]
