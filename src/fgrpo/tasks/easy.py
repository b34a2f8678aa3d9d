"""Easy integer tasks for small pretrained instruct models (SmolLM2-135M-Instruct and up).

A 135M chat model mostly fails the default tasks on *format* ("The answer is 37+64."),
not on arithmetic. These families keep the arithmetic within its reach and ask for the
answer in the ``<answer>`` tag the extractor reads first, so RL has something to learn:
their pass@8 is well above their greedy accuracy (benchmarks/results/smollm2_tasks.md).

Each family still scales with ``data.difficulty`` and has a problem space of about
2,000 prompts or more at difficulty 1, so its 20% test share holds the >= 200 held-out
prompts an evaluation needs.
"""

from __future__ import annotations

import random

from fgrpo.tasks.arithmetic import IntegerAnswerTask

# Appended to every question: the tag the extractor reads before anything else.
ASK_FOR_TAG = "Write only the final number inside <answer></answer>."


class EasyTask(IntegerAnswerTask):
    """A question in words plus the request for a tagged answer."""

    def _ask(self, question: str, value: int) -> tuple[str, str, str]:
        return self._problem(f"{question} {ASK_FOR_TAG}", value)


class SmallAddition(EasyTask):
    name = "small-addition"
    description = "a one-digit number plus a (difficulty+1)-digit one, either order; exact match"
    reward_range = (0.0, 1.0)

    def make_problem(self, rng: random.Random, difficulty: int) -> tuple[str, str, str]:
        a, b = rng.randrange(10), rng.randrange(10 ** (difficulty + 1))
        if rng.random() < 0.5:
            a, b = b, a
        return self._ask(f"What is {a} + {b}?", a + b)


class SmallMultiplication(EasyTask):
    name = "small-multiplication"
    description = (
        "a one-digit number 2-9 times a (difficulty+1)-digit one, either order; exact match"
    )
    reward_range = (0.0, 1.0)

    def make_problem(self, rng: random.Random, difficulty: int) -> tuple[str, str, str]:
        a, b = rng.randint(2, 9), rng.randrange(10 ** (difficulty + 1))
        if rng.random() < 0.5:
            a, b = b, a
        return self._ask(f"What is {a} times {b}?", a * b)


class Comparison(EasyTask):
    name = "comparison"
    description = "the larger of two different numbers below 10^(difficulty+1); exact match"
    reward_range = (0.0, 1.0)

    def make_problem(self, rng: random.Random, difficulty: int) -> tuple[str, str, str]:
        a, b = rng.sample(range(10 ** (difficulty + 1)), 2)
        return self._ask(f"Which number is larger, {a} or {b}?", max(a, b))


class Successor(EasyTask):
    name = "successor"
    description = "the number right after or right before one below 10^(difficulty+2); exact match"
    reward_range = (0.0, 1.0)

    def make_problem(self, rng: random.Random, difficulty: int) -> tuple[str, str, str]:
        n = rng.randrange(1, 10 ** (difficulty + 2))
        if rng.random() < 0.5:
            return self._ask(f"What number comes right after {n}?", n + 1)
        return self._ask(f"What number comes right before {n}?", n - 1)


EASY_TASKS = (SmallAddition(), SmallMultiplication(), Comparison(), Successor())
