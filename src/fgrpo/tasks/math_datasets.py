"""Real math datasets as task families: GSM8K, OpenR1-Math, MATH-style ``\\boxed{}`` answers.

Answers are checked with ``math-verify`` (the verifier TRL and open-r1 use):
the gold answer and the model's answer are both parsed to SymPy and compared,
so ``18``, ``$18$``, ``\\boxed{18}`` and ``18.0`` all match, and ``\\frac12``
matches ``0.5``.

The module also carries reward functions with TRL's signature that work on the
datasets' *own* columns, so they can be named by import path in a data source
(``fgrpo.tasks.math_datasets:gsm8k_accuracy``) or handed to a plain TRL
``GRPOTrainer``.
"""

from __future__ import annotations

import random
import threading
from functools import lru_cache
from typing import Any

from fgrpo.tasks.base import (
    Task,
    answer_span,
    boxed_answer,
    completion_text,
    gsm8k_marked,
    tagged_answer,
)

ANSWER_FORMATS = ("auto", "gsm8k", "boxed", "tag", "plain")


def _timeout() -> int | None:
    """math-verify's timeouts use signal.alarm, which only works in the main thread.

    Flower runs the server loop, and Ray may run client code, off the main thread; there
    the timeout is switched off rather than crashing.
    """
    if threading.current_thread() is threading.main_thread():
        return 5
    # deferred: math-verify loads sympy (seconds); only math answers need it
    import math_verify.grader
    import math_verify.parser

    # We switch the timeout off knowingly (answers are short); skip math-verify's warning about it.
    math_verify.parser.TIMEOUT_WARNING_SHOWN = True
    math_verify.grader.TIMEOUT_WARNING_SHOWN = True
    return None


def _parse(text: str) -> list[Any]:
    # deferred: math-verify loads sympy (seconds); only math answers need it
    from math_verify import parse

    return parse(text, parsing_timeout=_timeout())


def gold_from_answer(text: Any, answer_format: str = "auto") -> str | None:
    """The final answer inside a dataset's answer column; None when it holds none.

    ``gsm8k``: what follows ``####``; ``boxed``: the last ``\\boxed{}`` (MATH solutions);
    ``tag``: the last ``<answer>…</answer>`` (R1-V's GeoQA solutions); ``plain``: the value
    itself (OpenR1-Math's ``answer`` column); ``auto``: the first of these that the text looks like.
    A degree sign is dropped: math-verify reads ``145°`` as text, ``145`` as a number.
    """
    if text is None:
        return None
    text = str(text).strip()
    if answer_format == "auto":
        answer_format = (
            "gsm8k"
            if "####" in text
            else "boxed"
            if "\\boxed" in text or "\\fbox" in text
            else "tag"
            if tagged_answer(text) is not None
            else "plain"
        )
    if answer_format == "gsm8k":
        found = gsm8k_marked(text)
    elif answer_format == "boxed":
        found = boxed_answer(text)
    elif answer_format == "tag":
        found = tagged_answer(text)
    elif answer_format == "plain":
        found = text
    else:
        raise ValueError(
            f"unknown answer format {answer_format!r}; known: {', '.join(ANSWER_FORMATS)}"
        )
    if found is None:
        return None
    found = found.replace("°", "").strip()
    if answer_format == "gsm8k":
        found = found.replace(",", "").replace("$", "").strip()
    return found or None


@lru_cache(maxsize=65536)
def parse_gold(gold: str) -> tuple[Any, ...]:
    """math-verify's reading of a gold answer (empty when it cannot be parsed).

    A bare answer is boxed first so that LaTeX without delimiters (``\\frac{\\pi}{4}``)
    and short strings are read as math, as in MATH's own answers.
    """
    if "$" in gold or "\\boxed" in gold or "\\(" in gold or "\\[" in gold:
        return tuple(_parse(gold))
    return tuple(_parse(f"\\boxed{{{gold}}}")) or tuple(_parse(gold))


def parse_completion(text: str) -> list[Any]:
    """math-verify's reading of a model's answer: tagged answer first, else the whole text.

    A tagged answer is read as plain text first (``x = 5`` is 5), except LaTeX or π, which
    math-verify only reads inside a box (plain ``8\\pi`` would be 8)."""
    tagged = tagged_answer(text)
    if tagged is not None:
        boxed = f"\\boxed{{{tagged}}}"
        if "\\" in tagged or "\u03c0" in tagged:
            return _parse(boxed) or _parse(tagged)
        return _parse(tagged) or _parse(boxed)
    marked = gsm8k_marked(text) if "\\boxed" not in text else None
    if marked is not None:
        return _parse(marked)
    return _parse(text)


def math_equal(text: str, gold: str) -> bool:
    """Whether a completion's final answer equals the gold answer (math-verify)."""
    # deferred: math-verify loads sympy (seconds); only math answers need it
    from math_verify import verify

    gold_parsed = list(parse_gold(gold))
    if not gold_parsed:
        return False
    predicted = parse_completion(text)
    if not predicted:
        return False
    try:
        return bool(verify(gold_parsed, predicted, timeout_seconds=_timeout()))
    except Exception:  # noqa: BLE001 - an unverifiable answer is a wrong answer, never a crash
        return False


class _Checker(Task):
    """A gold check for dataset sources: it scores, it does not generate."""

    def make_problem(self, rng: random.Random, difficulty: int) -> tuple[str, str, str]:
        raise TypeError(f"{self.name!r} checks dataset answers; it has no problem generator")


class MathAnswer(_Checker):
    name = "math"
    description = "final answer equal to the gold answer under math-verify; 1 right, 0 wrong"
    reward_range = (0.0, 1.0)

    def extract(self, text: str) -> list[Any] | None:
        return parse_completion(text) or None

    def score(self, text: str, gold: str) -> float:
        return self.reward_range[1] if math_equal(text, gold) else self.reward_range[0]

    @staticmethod
    def gold_ok(gold: str) -> bool:
        """A gold answer math-verify reads as math (not merely as an unparsed string)."""
        return any(not isinstance(x, str) for x in parse_gold(gold))


def _normalise(text: str) -> str:
    return " ".join(text.strip().strip(".").split()).casefold()


class ExactAnswer(_Checker):
    name = "exact"
    description = (
        "final answer equal to the gold string (case and spacing ignored); 1 right, 0 wrong"
    )
    reward_range = (0.0, 1.0)

    def extract(self, text: str) -> str | None:
        return _normalise(answer_span(text)) or None

    def score(self, text: str, gold: str) -> float:
        return (
            self.reward_range[1] if self.extract(text) == _normalise(gold) else self.reward_range[0]
        )

    @staticmethod
    def gold_ok(gold: str) -> bool:
        return bool(_normalise(gold))


CHECKERS: dict[str, _Checker] = {c.name: c for c in (MathAnswer(), ExactAnswer())}


# --- reward functions with TRL's signature, on the datasets' own columns -------------------


def gsm8k_accuracy(completions: list[Any], answer: list[str], **kwargs: Any) -> list[float | None]:
    """1.0 when the completion's final number equals GSM8K's ``#### n``; None if the row has
    none."""
    out: list[float | None] = []
    for completion, solution in zip(completions, answer, strict=True):
        gold = gold_from_answer(solution, "gsm8k")
        out.append(None if gold is None else float(math_equal(completion_text(completion), gold)))
    return out


def boxed_accuracy(
    completions: list[Any], solution: list[str], **kwargs: Any
) -> list[float | None]:
    """1.0 when the completion matches the last ``\\boxed{}`` of a MATH-style ``solution``.

    Like TRL's own accuracy reward, a row whose solution cannot be parsed gives None (skipped).
    """
    out: list[float | None] = []
    for completion, sol in zip(completions, solution, strict=True):
        gold = gold_from_answer(sol, "boxed")
        if gold is None or not parse_gold(gold):
            out.append(None)
        else:
            out.append(float(math_equal(completion_text(completion), gold)))
    return out


def answer_accuracy(completions: list[Any], answer: list[str], **kwargs: Any) -> list[float | None]:
    """1.0 when the completion matches a plain final-answer column (OpenR1-Math's ``answer``)."""
    out: list[float | None] = []
    for completion, gold in zip(completions, answer, strict=True):
        if gold is None or not parse_gold(str(gold)):
            out.append(None)
        else:
            out.append(float(math_equal(completion_text(completion), str(gold))))
    return out
