"""Reward functions of ``[[data.sources]]``: imported by path, checked, scaled, per source.

A source's functions are written for TRL's ``GRPOTrainer`` and see exactly its keyword
lists; ``source_reward`` hands each only its own source's rows (other rows get ``None``,
which TRL skips) and turns a missing column, a raise, NaN, a string or a wrong length into
one ``RewardFunctionError`` naming the function.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import math
import os
import sys
from collections.abc import Callable, Sequence
from numbers import Real
from pathlib import Path
from typing import Any

from fgrpo.core.config import SourceConfig
from fgrpo.core.errors import UserInputError
from fgrpo.tasks.base import completion_text
from fgrpo.tasks.math_datasets import CHECKERS

RewardFn = Callable[..., list[float | None]]
# What TRL's GRPOTrainer passes every reward function besides the dataset's columns.
TRL_ARGUMENTS = frozenset(
    {
        "prompts",
        "completions",
        "completion_ids",
        "trainer_state",
        "log_extra",
        "log_metric",
        "environments",
    }
)


class RewardFunctionError(UserInputError, RuntimeError):
    """A user reward function misbehaved; the message names it and the sample."""

    kind = "reward function error"


def import_object(spec: str) -> Callable[..., Any]:
    """``package.module:function`` (or ``path/to/file.py:function``) -> the callable.

    Modules are imported from the Python path, then from the current directory.
    """
    if spec.count(":") != 1 or not all(spec.split(":")):
        raise ValueError(f"reward {spec!r} must look like package.module:function")
    module_name, attr = spec.split(":")
    try:
        if module_name.endswith(".py"):
            file = Path(module_name)
            if not file.is_file():
                raise ImportError(f"file not found: {module_name}")
            module_spec = importlib.util.spec_from_file_location(f"fgrpo_user_{file.stem}", file)
            assert module_spec is not None and module_spec.loader is not None
            module = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)
        else:
            if os.getcwd() not in sys.path:
                sys.path.append(os.getcwd())
            module = importlib.import_module(module_name)
    except ImportError as err:
        raise ImportError(f"cannot import reward {spec!r}: {err}") from err
    except Exception as err:  # noqa: BLE001 - the user's module failed while importing
        raise ImportError(
            f"cannot import reward {spec!r}: importing {module_name} raised {type(err).__name__}: {err}"
        ) from err
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise AttributeError(
                f"cannot import reward {spec!r}: {module_name} has no attribute {attr!r}"
            )
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"reward {spec!r} is not callable")
    return obj


def _check_rewards(
    values: Any, n: int, label: str, source: str, prompts: Sequence[Any]
) -> list[float | None]:
    """The user's return value, checked: one finite number (or None) per completion."""
    where = f"reward function {label} (data source {source!r})"
    if isinstance(values, (str, bytes, dict)) or not hasattr(values, "__len__"):
        raise RewardFunctionError(
            f"{where} returned {type(values).__name__}, expected a list of {n} numbers"
        )
    values = list(values)
    if len(values) != n:
        raise RewardFunctionError(f"{where} returned {len(values)} values for {n} completions")
    checked: list[float | None] = []
    for k, value in enumerate(values):
        if value is None:
            checked.append(None)
            continue
        if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
            value = value.item()
        if isinstance(value, bool) or not isinstance(value, Real):
            raise RewardFunctionError(
                f"{where} returned {value!r} for sample {k}; expected a number or None"
            )
        if not math.isfinite(float(value)):
            prompt = completion_text(prompts[k])[:80] if k < len(prompts) else "?"
            raise RewardFunctionError(
                f"{where} returned {value} for sample {k} (prompt {prompt!r}); "
                "return None to skip a sample"
            )
        checked.append(float(value))
    return checked


def required_columns(fn: Callable[..., Any]) -> list[str]:
    """The arguments ``fn`` cannot do without that TRL does not pass itself: dataset columns."""
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # a builtin or an odd callable: nothing to check before calling
        return []
    keyword = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return [
        p.name
        for p in parameters
        if p.kind in keyword
        and p.default is inspect.Parameter.empty
        and p.name not in TRL_ARGUMENTS
    ]


def missing_column(label: str, source: str, column: str, columns: Any) -> RewardFunctionError:
    return RewardFunctionError(
        f"reward function {label} (data source {source!r}) needs a column {column!r} that the rows do not have "
        f'(columns: {", ".join(sorted(columns))}); add it to the source, e.g. columns = {{{column} = "gold"}} '
        f"for the parsed gold answer, or rename a column to {column!r}"
    )


def source_reward(fn: Callable[..., Any], label: str, source: str, scale: float = 1.0) -> RewardFn:
    """Wrap a TRL reward function so it sees only ``source``'s rows, checked and scaled.

    Rows of other tasks get None (TRL ignores None when summing rewards).
    """
    needs = required_columns(fn)

    def reward(prompts: list[Any], completions: list[Any], **kwargs: Any) -> list[float | None]:
        for column in needs:
            if column not in kwargs:
                raise missing_column(label, source, column, kwargs.keys() - TRL_ARGUMENTS)
        n = len(completions)
        mine = [i for i, t in enumerate(kwargs.get("task") or [source] * n) if t == source]
        out: list[float | None] = [None] * n
        if not mine:
            return out
        pick = lambda seq: [seq[i] for i in mine]  # noqa: E731
        columns = {
            k: pick(v) if isinstance(v, list) and len(v) == n else v for k, v in kwargs.items()
        }
        sub_prompts = pick(prompts)
        try:
            values = fn(prompts=sub_prompts, completions=pick(completions), **columns)
        except RewardFunctionError:
            raise
        except Exception as err:  # noqa: BLE001 - reported with the function's name
            raise RewardFunctionError(
                f"reward function {label} (data source {source!r}) raised {type(err).__name__}: {err}"
            ) from err
        for i, value in zip(
            mine, _check_rewards(values, len(mine), label, source, sub_prompts), strict=True
        ):
            out[i] = None if value is None else value * scale
        return out

    reward.__name__ = f"{source}:{label.rsplit(':', 1)[-1]}"
    reward.source, reward.label, reward.required_columns = source, label, needs  # type: ignore[attr-defined]
    return reward


def accuracy_reward(checker: str) -> Callable[..., list[float]]:
    """The default reward of a source without ``rewards``: its gold check, 1 right / 0 wrong."""

    def accuracy(completions: list[Any], gold: list[str], **_: Any) -> list[float]:
        check = CHECKERS[checker]
        return [check.score(completion_text(c), g) for c, g in zip(completions, gold, strict=True)]

    return accuracy


def source_reward_functions(source: SourceConfig, scale: float = 1.0) -> list[RewardFn]:
    if not source.rewards:
        return [
            source_reward(
                accuracy_reward(source.checker), f"{source.checker}-accuracy", source.name, scale
            )
        ]
    return [source_reward(import_object(spec), spec, source.name, scale) for spec in source.rewards]
