"""Structured-answer tasks: list sorting (partial credit) and a countdown puzzle (±1)."""

from __future__ import annotations

import ast
import operator
import random
from collections import Counter

from fgrpo.tasks.base import INTEGER, Task, answer_span, boxed_answer, tagged_answer


class Sorting(Task):
    name = "sorting"
    description = "sort 4+difficulty digits ascending; 5 x fraction of correct positions"
    reward_range = (0.0, 5.0)

    def make_problem(self, rng: random.Random, difficulty: int) -> tuple[str, str, str]:
        values = [rng.randrange(10) for _ in range(4 + difficulty)]
        gold = " ".join(str(v) for v in sorted(values))
        return f"sort {' '.join(map(str, values))}", gold, f"<answer>{gold}</answer>"

    def extract(self, text: str) -> list[int] | None:
        """The integers of the answer span, in order ("1 2 3", "[1, 2, 3]", "$1,2,3$")."""
        found = INTEGER.findall(answer_span(text).translate(_MINUS))
        return [int(v) for v in found] if found else None

    def score(self, text: str, gold: str) -> float:
        want = [int(v) for v in gold.split()]
        got = self.extract(text) or []
        if len(got) != len(want):  # extra or missing items must not earn positional credit
            hits = sum(g == w for g, w in zip(got, want, strict=False)) * min(
                1.0, len(want) / max(len(got), 1)
            )
        else:
            hits = sum(g == w for g, w in zip(got, want, strict=False))
        return self.reward_range[1] * hits / len(want)


_MINUS = str.maketrans({"\u2212": "-"})
# How models write operators and LaTeX around an expression -> Python syntax.
_EXPRESSION_SPELLING = {
    "\\times": "*",
    "\\cdot": "*",
    "\u00d7": "*",
    "\u00b7": "*",
    "\u2212": "-",
    "\\left": "",
    "\\right": "",
    "$": "",
    "{": "(",
    "}": ")",
}
_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul}


def _evaluate(node: ast.AST) -> tuple[int, list[int]]:
    """Value of an expression made of integers, +, -, *; and the integers it used."""
    if isinstance(node, ast.Expression):
        return _evaluate(node.body)
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value, [node.value]
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        left, used_l = _evaluate(node.left)
        right, used_r = _evaluate(node.right)
        return _OPS[type(node.op)](left, right), used_l + used_r
    raise ValueError("unsupported expression")


class Countdown(Task):
    """Reach the target with each given number exactly once, using + - *."""

    name = "countdown"
    description = "hit the target with 2+difficulty numbers (1 to 8*(difficulty+1)) and + - *; +1 right, -1 wrong"
    reward_range = (-1.0, 1.0)

    def make_problem(self, rng: random.Random, difficulty: int) -> tuple[str, str, str]:
        numbers = [rng.randint(1, 8 * (difficulty + 1)) for _ in range(2 + difficulty)]
        expression = str(numbers[0])
        for n in numbers[1:]:
            expression = f"{expression}{rng.choice('+-*')}{n}"
        target = _evaluate(ast.parse(expression, mode="eval"))[0]
        shown = sorted(numbers)
        question = f"make {target} from {' '.join(map(str, shown))}"
        gold = f"{target}|{' '.join(map(str, shown))}"
        return question, gold, f"<answer>{expression}</answer>"

    def extract(self, text: str) -> tuple[int, list[int]] | None:
        """(value, numbers used) of the tagged or boxed expression; None when absent or invalid.

        ``3*4+1 = 13`` is read as its left side; LaTeX ``\\times``/``\\cdot`` and ``×`` mean ``*``.
        """
        body = tagged_answer(text)
        if body is None:
            body = boxed_answer(text)
        if body is None or len(body) > 64:
            return None
        for spelling, python in _EXPRESSION_SPELLING.items():
            body = body.replace(spelling, python)
        body = body.split("=")[0].strip()
        try:
            return _evaluate(ast.parse(body, mode="eval"))
        except (SyntaxError, ValueError, RecursionError):
            return None

    def score(self, text: str, gold: str) -> float:
        target, numbers = gold.split("|")
        parsed = self.extract(text)
        ok = (
            parsed is not None
            and parsed[0] == int(target)
            and Counter(parsed[1]) == Counter(int(n) for n in numbers.split())
        )
        return self.reward_range[1] if ok else self.reward_range[0]
