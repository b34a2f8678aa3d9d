"""What every verifiable task provides: problems, answer extraction, reward, gold check.

Extraction is shared by all tasks and is deliberately forgiving about *where* an
answer is written and strict about *what* it is:

1. the last ``<answer>…</answer>`` tag wins;
2. otherwise the last LaTeX ``\\boxed{…}`` (or ``\\fbox{…}``);
3. otherwise a GSM8K-style ``#### answer`` marker;
4. otherwise the whole text, where the last number counts.

Numbers may be negative (``-5``, ``−5``), carry thousands separators
(``1,000``) or sit in LaTeX (``$12$``); a minus between two operands
(``5-3``) is subtraction, not a sign; ``12.0`` is the integer 12 while ``12.5``
is no integer at all.
"""

from __future__ import annotations

import random
import re
from abc import ABC, abstractmethod
from fractions import Fraction
from typing import Any

from fgrpo.tasks.split import share_of

ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
# Plain signed integers (no separators), for lists of values such as sorting answers.
INTEGER = re.compile(r"(?:(?<![\w.)\]}])-)?(?<![\w.])\d+")
# A number as people and models write it: optional sign, thousands separators, decimals.
NUMBER = re.compile(
    r"(?:(?<![\w.)\]}])(?P<sign>-)|(?<![\w.]))"
    r"(?P<int>\d{1,3}(?:,\d{3})+(?![\d])|\d+)"
    r"(?P<frac>\.\d+)?"
)
_BOX = re.compile(r"\\(?:boxed|fbox)\s*\{")
_GSM8K_MARK = "####"
_UNICODE_MINUS = str.maketrans({"\u2212": "-", "\u2013": "-", "\u2014": "-"})


def completion_text(completion: Any) -> str:
    """TRL hands reward functions plain strings or chat messages; give back the text."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list):  # conversational: [{"role": "assistant", "content": ...}]
        return "".join(str(m.get("content", "")) for m in completion if isinstance(m, dict))
    if isinstance(completion, dict):
        return str(completion.get("content", ""))
    return str(completion)


def tagged_answer(text: str) -> str | None:
    """Content of the last <answer>…</answer> tag, stripped; None when absent."""
    found = ANSWER_TAG.findall(text)
    return found[-1].strip() if found else None


def boxed_answer(text: str) -> str | None:
    """Content of the last ``\\boxed{…}``, braces balanced; None when absent or unclosed."""
    starts = [m.end() for m in _BOX.finditer(text)]
    for start in reversed(starts):
        depth, pos = 1, start
        while pos < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[pos], 0)
            pos += 1
        if depth == 0:
            return text[start : pos - 1].strip()
    return None


def gsm8k_marked(text: str) -> str | None:
    """What follows the last ``####`` (GSM8K's answer marker), up to the end of its line."""
    if _GSM8K_MARK not in text:
        return None
    tail = text.rsplit(_GSM8K_MARK, 1)[1].strip()
    return tail.splitlines()[0].strip() if tail else None


def answer_span(text: str) -> str:
    """The part of a completion that holds the answer (tag > boxed > #### > whole text)."""
    for finder in (tagged_answer, boxed_answer, gsm8k_marked):
        found = finder(text)
        if found is not None:
            return found
    return text


def numbers(text: str) -> list[Fraction]:
    """Every number in ``text`` as an exact Fraction, in order of appearance."""
    text = text.translate(_UNICODE_MINUS)
    found = []
    for m in NUMBER.finditer(text):
        value = Fraction(m["int"].replace(",", "") + (m["frac"] or ""))
        found.append(-value if m["sign"] else value)
    return found


def last_integer(text: str) -> int | None:
    """The answer a model meant when it gave no tag: the last number it wrote, if whole."""
    found = numbers(text)
    if not found or found[-1].denominator != 1:
        return None
    return int(found[-1])


class Task(ABC):
    """A verifiable task family. Subclasses set the class attributes and three methods."""

    name: str
    description: str
    reward_range: tuple[float, float]  # native scale: (wrong, right)
    needs_images = False  # rows carry an ``image`` column: a vision-language model must read it

    @abstractmethod
    def make_problem(self, rng: random.Random, difficulty: int) -> tuple[str, str, str]:
        """Return (question, gold answer, gold completion text for supervised warm-up)."""

    @abstractmethod
    def extract(self, text: str) -> Any:
        """Parse the model's answer from a completion; None when there is none."""

    @abstractmethod
    def score(self, text: str, gold: str) -> float:
        """Native-scale reward of one completion against the gold answer."""

    def is_correct(self, text: str, gold: str) -> bool:
        """Exact success, used by evaluation (accuracy), independent of reward scale."""
        return self.score(text, gold) >= self.reward_range[1]

    def make_row(self, rng: random.Random, difficulty: int) -> tuple[str, dict[str, Any]]:
        """(the problem's identity, its training row). The identity places the problem in the
        fixed split and tells repeats apart: the question itself, for text tasks."""
        question, answer, solution = self.make_problem(rng, difficulty)
        return question, {
            "prompt": [{"role": "user", "content": question}],
            "answer": answer,
            "solution": solution,
            "task": self.name,
        }

    def generate(
        self, n: int, seed: int, difficulty: int = 1, share: str | None = None, unique: bool = False
    ) -> list[dict[str, Any]]:
        """n problems, deterministic in (task, seed, difficulty, share).

        ``share`` keeps only problems of one side of the fixed split ("train" or "test",
        see fgrpo.tasks.split); ``unique`` drops repeated problems.
        """
        if share not in (None, "train", "test"):
            raise ValueError(f"share must be 'train', 'test' or None, got {share!r}")
        rng = random.Random(f"{self.name}:{seed}:{difficulty}")
        rows: list[dict[str, Any]] = []
        seen: set[str] = set()
        for _ in range(max(1000, 50 * n)):  # the shares are large: this bound only stops a runaway
            if len(rows) == n:
                break
            identity, row = self.make_row(rng, difficulty)
            if (share and share_of(identity) != share) or (unique and identity in seen):
                continue
            seen.add(identity)
            rows.append(row)
        if len(rows) < n:
            raise ValueError(
                f"task {self.name}: only {len(rows)} of {n} distinct {share or ''} prompts "
                f"at difficulty {difficulty}; ask for fewer"
            )
        return rows
