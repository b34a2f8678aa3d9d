"""Shared by the data-source tests: reward functions that configs name by import path (HERE), and
builders for a source table and a config over it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fgrpo.core.config import Config
from fgrpo.runtime.configs import config_from_dict

HERE = "tests.source_helpers"
CALLS: list[dict[str, Any]] = []


# --- reward functions referenced by import path from the configs below ---------------------


def recording_reward(prompts, completions, **kwargs):
    """Records what TRL would hand over; scores 1 per completion, None for odd ids."""
    CALLS.append({"prompts": prompts, "completions": completions, **kwargs})
    return [None if str(q).endswith("skip") else 1.0 for q in kwargs["question"]]


def raising_reward(completions, **kwargs):
    raise ZeroDivisionError("boom")


def nan_reward(completions, **kwargs):
    return [float("nan")] * len(completions)


def short_reward(completions, **kwargs):
    return [1.0] * (len(completions) - 1)


def text_reward(completions, **kwargs):
    return ["good"] * len(completions)


def source(location: Path, **extra: Any) -> dict[str, Any]:
    return {
        "name": "gsm8k",
        "path": str(location),
        "prompt_column": "question",
        "answer_column": "answer",
        **extra,
    }


def config(*sources: dict[str, Any], **data: Any) -> Config:
    tree = {
        "federation": {"num_clients": 2},
        "data": {"tasks": [], "partition": "iid", "test_size": 4, **data, "sources": list(sources)},
    }
    return config_from_dict(tree)
