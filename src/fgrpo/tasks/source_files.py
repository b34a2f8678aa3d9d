"""Reading a data source's raw rows: local JSONL/JSON/CSV/parquet files, directories, hub datasets.

Every row carries its location ("file, line N" or "file, row N") so that a defect found later
(a missing column, an empty prompt) names the place a data owner can open and fix. Defects of the
file itself (bytes that are not UTF-8, a line that is not JSON) are reported here, with the line.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fgrpo.core.errors import ConfigError, HubUnreachable

if TYPE_CHECKING:
    from fgrpo.core.config import SourceConfig

FILE_TYPES = (".jsonl", ".json", ".csv", ".parquet")


class DataError(ConfigError):
    """A problem with a data owner's data; ``key`` names the file and row (or the source)."""

    kind = "data error"


@dataclasses.dataclass
class Table:
    """Raw rows of one split, read lazily, each with a location for error messages."""

    label: str
    size: int
    get: Callable[[int], tuple[str, dict[str, Any]]]
    folder: Path | None = None  # where relative image paths start (a local file's folder)


def _text(path: Path) -> str:
    """The file as text. UTF-8 (a leading byte-order mark, as spreadsheet exports write, is
    dropped); anything else is refused at its line rather than decoded into wrong prompts."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise DataError(
            f"{path}, line {line}",
            f"byte 0x{data[err.start]:02x} is not UTF-8 text; save the file as UTF-8",
        ) from None


def _jsonl(path: Path, text: str) -> Table:
    rows: list[tuple[str, dict[str, Any]]] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}, line {number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(where, f"not valid JSON ({err.msg})") from None
        if not isinstance(row, dict):
            raise DataError(where, f"expected a JSON object, got {type(row).__name__}")
        rows.append((where, row))
    return Table(str(path), len(rows), rows.__getitem__)


def _rows(path: Path) -> Table:
    suffix = path.suffix.lower()
    if not path.is_file():
        raise DataError(str(path), "file not found")
    if suffix == ".jsonl":
        return _jsonl(path, _text(path))
    if suffix == ".json":
        text = _text(path)
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            return _jsonl(path, text)  # JSON lines under a .json name
        if (
            isinstance(data, dict)
            and len(data) == 1
            and isinstance(next(iter(data.values())), list)
        ):
            data = next(iter(data.values()))  # {"data": [...]}
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise DataError(str(path), "expected a JSON array of objects or JSON lines")
        rows = [(f"{path}, row {i + 1}", r) for i, r in enumerate(data)]
        return Table(str(path), len(rows), rows.__getitem__)
    if suffix == ".csv":
        reader = csv.DictReader(io.StringIO(_text(path), newline=""))
        rows = [
            (f"{path}, row {i + 1} (line {reader.line_num})", dict(r)) for i, r in enumerate(reader)
        ]
        return Table(str(path), len(rows), rows.__getitem__)
    if suffix == ".parquet":
        # deferred: it takes seconds to import; only this kind of source needs it
        import pyarrow.parquet as pq

        try:
            records = pq.read_table(path).to_pylist()
        except Exception as err:  # noqa: BLE001
            raise DataError(str(path), f"cannot read parquet: {err}") from err
        rows = [(f"{path}, row {i + 1}", r) for i, r in enumerate(records)]
        return Table(str(path), len(rows), rows.__getitem__)
    raise DataError(str(path), f"unsupported file type {suffix!r}; use {', '.join(FILE_TYPES)}")


def read_file(path: Path) -> Table:
    table = _rows(path)
    table.folder = path.parent
    return table


def _read_hub(source: SourceConfig, split: str) -> Table:
    """A split of a hub dataset via ``datasets.load_dataset`` (needs network or the HF cache)."""
    # deferred: it takes seconds to import; only this kind of source needs it
    from datasets import load_dataset

    label = f"{source.hub}" + (f" ({source.subset})" if source.subset else "") + f" [{split}]"
    try:
        dataset = load_dataset(source.hub, source.subset or None, split=split)
    except ConnectionError as err:
        raise HubUnreachable(
            f"{label}: not in the local Hugging Face cache and the hub is unreachable"
        ) from err
    except Exception as err:  # noqa: BLE001 - network, unknown id, unknown split...
        raise DataError(
            label, f"cannot load from the Hugging Face hub: {type(err).__name__}: {err}"
        ) from err
    return Table(label, len(dataset), lambda i: (f"{label}, row {i + 1}", dict(dataset[i])))


def _file_in(directory: Path, split: str) -> Path | None:
    for suffix in FILE_TYPES:
        candidate = directory / f"{split}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def tables(source: SourceConfig) -> tuple[Table, Table | None]:
    """(training table, separate test table or None when tests are carved from training)."""
    if source.hub:
        test = _read_hub(source, source.test_split) if source.test_split else None
        return _read_hub(source, source.split), test
    path = Path(source.path)
    test_file = Path(source.test_path) if source.test_path else None
    if path.is_dir():
        train_file = _file_in(path, source.split)
        if train_file is None:
            raise DataError(
                str(path), f"no {source.split}{{{','.join(FILE_TYPES)}}} file in this directory"
            )
        if test_file is None:
            test_file = _file_in(path, source.test_split or "test")
        path = train_file
    return read_file(path), (read_file(test_file) if test_file else None)
