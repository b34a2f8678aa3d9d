"""What every verifiable task provides: problems, answer extraction, reward, gold check."""

from __future__ import annotations

import random
import re
from abc import ABC, abstractmethod
from typing import Any

ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
INTEGER = re.compile(r"-?\d+")


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


def last_integer(text: str) -> int | None:
    """The answer a model meant when it gave no tag: the last integer it wrote."""
    found = INTEGER.findall(text)
    return int(found[-1]) if found else None


class Task(ABC):
    """A verifiable task family. Subclasses set the class attributes and three methods."""

    name: str
    description: str
    reward_range: tuple[float, float]  # native scale: (wrong, right)

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

    def generate(self, n: int, seed: int, difficulty: int = 1) -> list[dict[str, Any]]:
        """n problems, deterministic in (task, seed, difficulty)."""
        rng = random.Random(f"{self.name}:{seed}:{difficulty}")
        rows = []
        for _ in range(n):
            question, answer, solution = self.make_problem(rng, difficulty)
            rows.append(
                {
                    "prompt": [{"role": "user", "content": question}],
                    "answer": answer,
                    "solution": solution,
                    "task": self.name,
                }
            )
        return rows
