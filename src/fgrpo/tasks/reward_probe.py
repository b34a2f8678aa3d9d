"""Reward functions tried on the completions a policy really writes, before any client starts.

An untrained policy writes empty and malformed text long before it writes the
gold answer, so each reward function is called with all three, on a few rows of
every task, with the keyword arguments TRL's GRPOTrainer passes. A data source's
functions are wrapped by ``fgrpo.tasks.source_rewards.source_reward``, which turns a
raise, a NaN, a wrong count or a non-number into a RewardFunctionError naming the
function; here the message also says which completion caused it. None (skip the
sample) is a legitimate answer and passes, unless a function never scores anything of its own task.
The batches have the shape of a real GRPO step (its prompts, each with ``num_generations``
completions): a function that breaks only on larger batches is caught here too. The total reward
(TRL's weighted sum) must lie in the task's declared range, which FGRPO's ``range`` gain divides by.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from fgrpo.tasks.rewards import weighted_total
from fgrpo.tasks.source_rewards import RewardFunctionError, missing_column

GARBAGE = "<answer></answer> }{ \\boxed{ #### <answer>NaN ∞</answer> \x00 ¿¿ 1e999 -"
PROBES: dict[str, Callable[[dict[str, Any]], str]] = {
    "the gold answer": lambda row: str(
        row["gold"] if row.get("gold") is not None else row.get("answer", "")
    ),
    "an empty completion": lambda row: "",
    "a malformed completion": lambda row: GARBAGE,
}


def _trainer_kwargs() -> dict[str, Any]:
    """What GRPOTrainer adds to every reward call besides the dataset columns."""
    # deferred: transformers takes seconds to import; only the reward probe needs it
    from transformers import TrainerState

    return {
        "trainer_state": TrainerState(),
        "log_extra": lambda *a, **k: None,
        "log_metric": lambda *a, **k: None,
    }


def check_columns(
    funcs: Sequence[Callable[..., Any]], source: str, rows: list[dict[str, Any]]
) -> None:
    """Each of ``source``'s reward functions finds every column it requires in the source's own rows
    (in the pool's shared table another source's column would be there, as None for these rows)."""
    columns = set().union(*(row.keys() for row in rows)) - {
        "prompt"
    }  # TRL passes `prompts` instead
    for fn in funcs:
        if getattr(fn, "source", None) != source:
            continue
        for column in fn.required_columns:  # type: ignore[attr-defined]
            if column not in columns:
                raise missing_column(fn.label, source, column, columns)  # type: ignore[attr-defined]


def batch_shape(settings: dict[str, Any]) -> tuple[int, int]:
    """(distinct prompts, completions per prompt) of one GRPO step under ``settings``
    (grpo_settings())."""
    generations = int(settings["num_generations"])
    return int(settings["per_device_train_batch_size"]) // generations, generations


def _range_text(bounds: tuple[float, float]) -> str:
    return f"[{bounds[0]:g}, {bounds[1]:g}]"


def probe_rewards(
    funcs: Sequence[Callable[..., Any]],
    weights: Sequence[float],
    rows: list[dict[str, Any]],
    generations: int,
    bounds: tuple[float, float],
) -> None:
    """Call every function on ``rows`` (one task's, one GRPO step's prompts) with each probe
    completion,
    ``generations`` per prompt, as TRL batches them; raise on misbehaviour, on a total reward
    outside the task's declared range ``bounds``, and on a function of the task that scores no
    completion at all."""
    if not rows:
        return
    task = rows[0].get("task")
    batch = [
        row for row in rows for _ in range(generations)
    ]  # TRL repeats each prompt's columns per completion
    columns = {k: [r.get(k) for r in batch] for k in rows[0] if k != "prompt"}
    prompts = [r["prompt"] for r in batch]
    results: dict[
        str, list[list[Any]]
    ] = {}  # probe kind -> each function's values; raising ones fail first
    for kind, text_of in PROBES.items():
        texts = [text_of(r) for r in batch]
        completions = [[{"role": "assistant", "content": t}] for t in texts]
        ids = [list(range(len(t))) for t in texts]  # stand-in token ids, one per character
        try:
            results[kind] = [
                fn(
                    prompts=prompts,
                    completions=completions,
                    completion_ids=ids,
                    **_trainer_kwargs(),
                    **columns,
                )
                for fn in funcs
            ]
        except RewardFunctionError as err:
            raise RewardFunctionError(
                f"{err} (probed with {kind} on task {task!r}, a batch of {len(batch)} completions)"
            ) from err
    for kind, values in results.items():
        for k in range(len(batch)):
            total = weighted_total([v[k] for v in values], weights)
            if total is not None and not bounds[0] - 1e-9 <= total <= bounds[1] + 1e-9:
                culprits = ", ".join(
                    f"{_name(fn)} gave {v[k]:g}"
                    for fn, v in zip(funcs, values, strict=True)
                    if v[k] is not None
                )
                raise RewardFunctionError(
                    f"reward {total:g} for {kind} on task {task!r} ({culprits}) is outside the "
                    f"task's declared range {_range_text(bounds)}; return rewards in it, or "
                    "declare the range (a data source's reward_min/reward_max)"
                )
    scored = {
        j
        for values in results.values()
        for j, v in enumerate(values)
        if any(x is not None for x in v)
    }
    for j, fn in enumerate(funcs):
        if getattr(fn, "source", None) == task and j not in scored:
            raise RewardFunctionError(
                f"reward function {_name(fn)} (data source {task!r}) returned None for every "
                "completion (gold, empty and malformed): it would never score its own rows"
            )


def _name(fn: Callable[..., Any]) -> str:
    return str(getattr(fn, "label", getattr(fn, "__name__", fn)))
