"""Integer tasks with single-number answers: addition, multiplication, modular arithmetic."""

from __future__ import annotations

import random

from fgrpo.tasks.base import Task, answer_span, last_integer


class IntegerAnswerTask(Task):
    """Exact-match integer answer; reward is the top of the range when right."""

    def extract(self, text: str) -> int | None:
        """The last whole number of the answer span (tag, \\boxed{}, ####, or the text)."""
        return last_integer(answer_span(text))

    def score(self, text: str, gold: str) -> float:
        low, high = self.reward_range
        return high if self.extract(text) == int(gold) else low

    def _problem(self, question: str, value: int) -> tuple[str, str, str]:
        return question, str(value), f"<answer>{value}</answer>"


class Addition(IntegerAnswerTask):
    name = "addition"
    description = "a+b with (difficulty+1)-digit operands; exact match"
    reward_range = (0.0, 1.0)

    def make_problem(self, rng: random.Random, difficulty: int) -> tuple[str, str, str]:
        top = 10 ** (difficulty + 1)
        a, b = rng.randrange(top), rng.randrange(top)
        return self._problem(f"{a}+{b}=?", a + b)


class Multiplication(IntegerAnswerTask):
    name = "multiplication"
    description = "a*b, a single digit 2-9, b below 1.25*10^(difficulty+2); exact match, scored 10"
    reward_range = (0.0, 10.0)

    def make_problem(self, rng: random.Random, difficulty: int) -> tuple[str, str, str]:
        a, b = rng.randint(2, 9), rng.randrange(125 * 10**difficulty)
        return self._problem(f"{a}*{b}=?", a * b)


class Modular(IntegerAnswerTask):
    name = "modular"
    description = "a mod m, a below 2*10^(difficulty+2), m in 2-9; exact match"
    reward_range = (0.0, 1.0)

    def make_problem(self, rng: random.Random, difficulty: int) -> tuple[str, str, str]:
        a, m = rng.randrange(2 * 10 ** (difficulty + 2)), rng.randint(2, 9)
        return self._problem(f"{a} mod {m}=?", a % m)
