"""Bring-your-own data: ``[[data.sources]]`` -> validated prompts, held-out tests, rewards.

A source is one dataset (a local JSONL/JSON/CSV/parquet file, a directory with
``<split>.<ext>`` files, or a Hugging Face hub id) that joins the federation as
one task label. Its rows keep *every* column (after ``rename``), plus three that
fgrpo adds:

- ``prompt``: chat messages built from ``prompt_column`` (and ``system_prompt``);
- ``task``: the source's name, the label the partitioners split by;
- ``gold``: the final answer parsed from ``answer_column``;

and the source's ``columns``: copies of these or of the data's own columns under
the names its reward functions expect (``{solution = "gold"}`` for TRL's
``accuracy_reward(completions, solution)``).

So a reward function written for TRL's ``GRPOTrainer`` sees exactly the keyword
lists it would see there (``completions``, ``prompts``, ``completion_ids`` and one
list per column) and works unchanged. In a mixed pool each source's reward
functions (fgrpo.tasks.source_rewards) are called only with that source's rows; other rows get
``None``, which TRL skips, exactly as TRL's multi-task recipe does.

Errors a data owner can cause are reported once, naming the file and row or the
reward function: an empty prompt, an answer that cannot be parsed, a missing
file, a reward path that does not import, a reward that raises, returns NaN or
the wrong number of values. Nothing bad is trained on silently.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import math
import random
import re
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fgrpo.core.config import SourceConfig
from fgrpo.core.errors import ConfigError
from fgrpo.tasks.images import ImageError, image_digest, load_image
from fgrpo.tasks.math_datasets import CHECKERS, gold_from_answer
from fgrpo.tasks.registry import TASKS
from fgrpo.tasks.source_files import FILE_TYPES, DataError, Table, tables
from fgrpo.tasks.source_rewards import TRL_ARGUMENTS, import_object

if TYPE_CHECKING:
    from fgrpo.core.config import DataConfig

log = logging.getLogger("fgrpo")

# Columns fgrpo adds, and keyword names TRL passes to reward functions: a dataset column with
# one of these names would be overwritten or collide, so it must be renamed.
RESERVED_COLUMNS = TRL_ARGUMENTS | {"task", "gold", "completion"}
SOURCE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class _BadRow(ValueError):
    pass


class _NoSuchColumn(ValueError):
    """The source's ``columns`` names a column a row lacks: a config mistake, never a row to
    skip."""


# --- config validation (called from config.config_from_dict) ---------------------------------


def validate_data_config(data: DataConfig, local_files: bool = True) -> None:
    """Check every [data] value that can be checked before loading anything (the files only when
    ``local_files``: a deployed client parses the server's config, whose paths are the server's)."""

    for name in data.tasks:
        if name not in TASKS:
            raise ConfigError("data.tasks", f"unknown task {name!r}; known: {', '.join(TASKS)}")
    if len(set(data.tasks)) != len(data.tasks):
        raise ConfigError("data.tasks", "lists a task twice")
    if not data.tasks and not data.sources:
        raise ConfigError("data.tasks", "no tasks and no [[data.sources]]: nothing to train on")
    seen: set[str] = set(data.tasks)
    for i, source in enumerate(data.sources):
        validate_source(source, f"data.sources[{i}]", taken=seen, local_files=local_files)
        seen.add(source.name)
    for name in data.reward_scale:
        if name not in seen:
            raise ConfigError(
                f"data.reward_scale.{name}", f"not a task or source of this run: {', '.join(seen)}"
            )


def validate_source(
    source: SourceConfig,
    key: str,
    taken: set[str] = frozenset(),  # type: ignore[assignment]
    local_files: bool = True,
) -> None:

    if not source.name:
        raise ConfigError(f"{key}.name", "every data source needs a name (its task label)")
    if not SOURCE_NAME.match(source.name):
        raise ConfigError(f"{key}.name", f"use letters, digits, '_', '-', '.'; got {source.name!r}")
    if source.name in TASKS:
        raise ConfigError(f"{key}.name", f"{source.name!r} is a built-in task; choose another name")
    if source.name in taken:
        raise ConfigError(f"{key}.name", f"{source.name!r} is used twice")
    validate_source_fields(source, key, local_files)


def validate_source_fields(source: SourceConfig, key: str, local_files: bool = True) -> None:
    """Every check of a source but its name's (a node's own source takes a run's label, which
    may be a built-in task's: fgrpo.data.node_data)."""
    if bool(source.path) == bool(source.hub):
        raise ConfigError(
            key, "give exactly one of path (a local file) or hub (a Hugging Face dataset id)"
        )
    if local_files and source.path and not Path(source.path).exists():
        raise ConfigError(f"{key}.path", f"file not found: {source.path}")
    if local_files and source.test_path and not Path(source.test_path).is_file():
        raise ConfigError(f"{key}.test_path", f"file not found: {source.test_path}")
    if (
        source.path
        and Path(source.path).is_file()
        and Path(source.path).suffix.lower() not in FILE_TYPES
    ):
        raise ConfigError(
            f"{key}.path",
            f"unsupported file type {Path(source.path).suffix!r}; use {', '.join(FILE_TYPES)}",
        )
    for column_key in ("prompt_column", "answer_column"):
        if not getattr(source, column_key):
            raise ConfigError(f"{key}.{column_key}", "must name a column")
    for old, new in source.rename.items():
        if not isinstance(new, str) or not new:
            raise ConfigError(f"{key}.rename.{old}", f"expected a new column name, got {new!r}")
    for new, column in source.columns.items():
        if new in RESERVED_COLUMNS | {"prompt"}:
            raise ConfigError(
                f"{key}.columns.{new}",
                f"{new!r} is a column fgrpo or TRL sets; choose another name",
            )
        if not isinstance(column, str) or not column:
            raise ConfigError(
                f"{key}.columns.{new}",
                f'expected the name of a column to copy (e.g. "gold"), got {column!r}',
            )
    for j, spec in enumerate(source.rewards):
        if not local_files and spec.split(":")[0].endswith(".py"):
            continue  # a file of the config's machine, like its data paths
        try:
            import_object(spec)
        except (ImportError, AttributeError, TypeError, ValueError, SyntaxError) as err:
            raise ConfigError(f"{key}.rewards[{j}]", str(err)) from err
    if not source.reward_max > source.reward_min:
        raise ConfigError(
            f"{key}.reward_max",
            f"must exceed reward_min ({source.reward_min}), got {source.reward_max}",
        )


# --- rows -> prompts -----------------------------------------------------------------------


def _messages(value: Any, system_prompt: str) -> list[dict[str, str]]:
    if isinstance(value, str):
        messages = [{"role": "user", "content": value}]
    elif (
        isinstance(value, list)
        and value
        and all(
            isinstance(m, dict) and isinstance(m.get("content"), str) and m.get("role")
            for m in value
        )
    ):
        messages = [{"role": str(m["role"]), "content": m["content"]} for m in value]
    else:
        raise _BadRow(f"prompt must be text or a list of chat messages, got {str(value)[:60]!r}")
    if system_prompt and messages[0]["role"] != "system":
        messages.insert(0, {"role": "system", "content": system_prompt})
    return messages


def _is_empty(value: Any) -> bool:
    return (
        value is None
        or (isinstance(value, str) and not value.strip())
        or (isinstance(value, float) and math.isnan(value))
        or (isinstance(value, (list, dict)) and not value)
    )


def prepare_row(
    raw: dict[str, Any], source: SourceConfig, folder: Path | None = None
) -> dict[str, Any]:
    """One dataset row -> a training row (all columns kept); _BadRow says what is wrong.
    ``folder`` is where the row's relative image paths start."""
    row = {source.rename.get(k, k): v for k, v in raw.items()}
    reserved = RESERVED_COLUMNS | ({"prompt"} if source.prompt_column != "prompt" else set())
    if source.image_column and source.image_column != "image":
        reserved |= {"image"}  # fgrpo writes the image there
    clash = sorted(reserved & set(row))
    if clash:
        raise _BadRow(
            f'column {clash[0]!r} is reserved by fgrpo/TRL; rename it, e.g. rename = {{{clash[0]} = "{clash[0]}_"}}'
        )
    for role, column in (("prompt", source.prompt_column), ("answer", source.answer_column)):
        if column not in row:
            raise _BadRow(f"no {role} column {column!r} (columns: {', '.join(row) or 'none'})")
        if _is_empty(row[column]):
            raise _BadRow(f"empty {role} column {column!r}")
    messages = _messages(row[source.prompt_column], source.system_prompt)
    answer = row[source.answer_column]
    gold = gold_from_answer(answer, source.answer_format)
    if gold is None:
        raise _BadRow(
            f"answer cannot be parsed ({source.answer_format} format): {str(answer)[-80:]!r}"
        )
    checker = CHECKERS[source.checker]
    if not checker.gold_ok(gold):  # type: ignore[attr-defined]
        raise _BadRow(f"answer {gold!r} cannot be parsed by the {source.checker!r} checker")
    if source.image_column:
        row["image"] = _image(row, source.image_column, folder)
    row["prompt"] = messages
    row["task"] = source.name
    row["gold"] = gold
    derived = {}
    for (
        new,
        column,
    ) in source.columns.items():  # read before any is written: {a = "b", b = "a"} swaps
        if column not in row:
            raise _NoSuchColumn(
                f"columns.{new}: no column {column!r} to copy (columns: {', '.join(row)})"
            )
        derived[new] = row[column]
    row.update(derived)
    return row


def _image(row: dict[str, Any], column: str, folder: Path | None) -> Any:
    if column not in row or _is_empty(row[column]):
        raise _BadRow(f"no image in column {column!r}")
    try:
        return load_image(row[column], folder)
    except ImageError as err:
        raise _BadRow(str(err)) from None


def prompt_text(row: dict[str, Any]) -> str:
    """What makes two rows the same problem: the prompt's text, and its image if it has one."""
    text = str(row["prompt"][-1]["content"])
    return f"{text}\n[image {image_digest(row['image'])}]" if row.get("image") is not None else text


def _defect(raw: dict[str, Any], source: SourceConfig, folder: Path | None) -> str | None:
    try:
        prepare_row(raw, source, folder)
    except (_BadRow, _NoSuchColumn) as err:
        return str(err)
    return None


def _first_defect(table: Table, source: SourceConfig, found: int, problem: str) -> tuple[str, str]:
    """(location, problem) of the first bad row in file order; row ``found`` has ``problem``.

    Rows are read in a seeded shuffle, so the row that failed first is a random one: a column
    missing from every row would be blamed on "line 49". The owner fixes the file from the top.
    """
    for i in range(found):
        where, raw = table.get(i)
        earlier = _defect(raw, source, table.folder)
        if earlier is not None:
            return where, earlier
    return table.get(found)[0], problem


def _valid_rows(
    table: Table, source: SourceConfig, seed: int, skip: set[str]
) -> Iterator[dict[str, Any]]:
    """The table's usable rows in a seeded order; bad rows raise (or are skipped and logged)."""
    order = list(range(table.size))
    random.Random(f"{source.name}:{seed}:{table.label}").shuffle(order)
    skipped: list[str] = []
    try:
        for i in order:
            where, raw = table.get(i)
            try:
                row = prepare_row(raw, source, table.folder)
            except (_BadRow, _NoSuchColumn) as err:
                if isinstance(err, _NoSuchColumn) or source.on_bad_rows == "error":
                    where, problem = _first_defect(table, source, i, str(err))
                    hint = (
                        ""
                        if isinstance(err, _NoSuchColumn)
                        else '; on_bad_rows = "skip" drops such rows'
                    )
                    raise DataError(
                        where, f"{problem} (data source {source.name!r}{hint})"
                    ) from None
                skipped.append(f"{where}: {err}")
                continue
            if prompt_text(row) not in skip:
                yield row
    finally:
        if skipped:
            log.warning(
                "data source %r: skipped %d bad rows, first: %s",
                source.name,
                len(skipped),
                skipped[0],
            )


def _take(rows: Iterator[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """The next ``n`` rows (0: all that are left)."""
    return list(itertools.islice(rows, n) if n else rows)


def test_size_of(source: SourceConfig, default: int) -> int:
    return default if source.test_size < 0 else source.test_size


@lru_cache(maxsize=16)
def _load(
    source_json: str, seed: int, test_size: int
) -> tuple[tuple[dict[str, Any], ...], tuple[dict[str, Any], ...]]:
    source = SourceConfig(**json.loads(source_json))
    train_table, test_table = tables(source)
    if test_table is not None:
        test = _take(_valid_rows(test_table, source, seed, set()), test_size) if test_size else []
        held_out = {prompt_text(r) for r in test}
        train = _take(_valid_rows(train_table, source, seed, held_out), source.train_size)
    else:  # carve the test rows out of the (shuffled) training rows
        rows = _valid_rows(train_table, source, seed, set())
        test = _take(rows, test_size) if test_size else []
        held_out = {prompt_text(r) for r in test}
        train = [r for r in _take(rows, source.train_size) if prompt_text(r) not in held_out]
        if not train and test:
            raise DataError(
                train_table.label,
                f"data source {source.name!r}: all {len(test)} usable rows went to "
                f"the held-out test set (test_size = {test_size}); set the source's test_size (or "
                f"data.test_size) below {len(test)}, add rows, or give a test_path",
            )
    if not train:
        raise DataError(
            train_table.label, f"data source {source.name!r} has no usable training rows"
        )
    return tuple(train), tuple(test)


def load_source(
    source: SourceConfig, seed: int, default_test_size: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(training rows, held-out test rows) of one source; deterministic in (source, seed).

    Test rows never appear among the training rows (same prompt text counts as the same row).
    """
    source_json = json.dumps(dataclasses.asdict(source), sort_keys=True)
    train, test = _load(source_json, seed, test_size_of(source, default_test_size))
    return [dict(r) for r in train], [dict(r) for r in test]


def evaluation_rows(source: SourceConfig, test_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Test rows as evaluation reads them: prompt, ``answer`` = gold, task, checker (and image)."""
    return [
        {
            "prompt": r["prompt"],
            "answer": r["gold"],
            "task": source.name,
            "checker": source.checker,
            **({"image": r["image"]} if source.image_column else {}),
        }
        for r in test_rows
    ]
