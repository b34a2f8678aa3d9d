"""Reward functions tried on the completions a policy really writes, before any client starts.

An untrained policy writes empty and malformed text long before it writes the
gold answer, so each reward function is called with all three, on a few rows of
every task, with the keyword arguments TRL's GRPOTrainer passes. A data source's
functions are wrapped by ``fgrpo.tasks.source_rewards.source_reward``, which turns a
raise, a NaN, a wrong count or a non-number into a RewardFunctionError naming the
function; here the message also says which completion caused it. None (skip the
sample) is a legitimate answer and passes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .source_rewards import RewardFunctionError, missing_column

GARBAGE = "<answer></answer> }{ \\boxed{ #### <answer>NaN ∞</answer> \x00 ¿¿ 1e999 -"
PROBES: dict[str, Callable[[dict[str, Any]], str]] = {
    "the gold answer": lambda row: str(row["gold"] if row.get("gold") is not None else row.get("answer", "")),
    "an empty completion": lambda row: "",
    "a malformed completion": lambda row: GARBAGE,
}


def _trainer_kwargs() -> dict[str, Any]:
    """What GRPOTrainer adds to every reward call besides the dataset columns."""
    from transformers import TrainerState

    return {"trainer_state": TrainerState(), "log_extra": lambda *a, **k: None, "log_metric": lambda *a, **k: None}


def check_columns(funcs: Sequence[Callable[..., Any]], source: str, rows: list[dict[str, Any]]) -> None:
    """Each of ``source``'s reward functions finds every column it requires in the source's own rows
    (in the pool's shared table another source's column would be there, as None for these rows)."""
    columns = set().union(*(row.keys() for row in rows)) - {"prompt"}  # TRL passes `prompts` instead
    for fn in funcs:
        if getattr(fn, "source", None) != source:
            continue
        for column in fn.required_columns:  # type: ignore[attr-defined]
            if column not in columns:
                raise missing_column(fn.label, source, column, columns)  # type: ignore[attr-defined]


def probe_rewards(funcs: Sequence[Callable[..., Any]], rows: list[dict[str, Any]]) -> None:
    """Call every function on ``rows`` (one task's) with each probe completion; raise on misbehaviour."""
    if not rows:
        return
    columns = {k: [r.get(k) for r in rows] for k in rows[0] if k != "prompt"}
    prompts = [r["prompt"] for r in rows]
    for kind, text_of in PROBES.items():
        texts = [text_of(r) for r in rows]
        completions = [[{"role": "assistant", "content": t}] for t in texts]
        ids = [list(range(len(t))) for t in texts]  # stand-in token ids, one per character
        for fn in funcs:
            try:
                fn(prompts=prompts, completions=completions, completion_ids=ids, **_trainer_kwargs(), **columns)
            except RewardFunctionError as err:
                raise RewardFunctionError(f"{err} (probed with {kind} on task {rows[0].get('task')!r})") from err
