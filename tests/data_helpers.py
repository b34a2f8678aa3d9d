"""Small GSM8K-format files for data-source tests (no network, no ../shared needed)."""

from __future__ import annotations

import json
import random
from pathlib import Path

SHARED_GSM8K = Path(__file__).resolve().parents[2] / "shared" / "data" / "gsm8k"


def gsm8k_rows(n: int, seed: int = 0) -> list[dict[str, str]]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        a, b = rng.randint(1, 500), rng.randint(1, 500)
        rows.append(
            {
                "question": f"Tom has {a} apples and buys {b} more. How many apples does he have?",
                "answer": f"He has {a} + {b} = <<{a}+{b}={a + b}>>{a + b} apples.\n#### {a + b}",
            }
        )
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def gsm8k_dir(root: Path, train: int = 30, test: int = 8) -> Path:
    """root/train.jsonl and root/test.jsonl in the original GSM8K layout, disjoint prompts."""
    rows = gsm8k_rows(train + test)
    write_jsonl(root / "train.jsonl", rows[:train])
    write_jsonl(root / "test.jsonl", rows[train:])
    return root
