"""Paths in a config resolve against the folder of the file that names them.

A config is read in one place and used in others: ``fgrpo run --resume RUN``, ``fgrpo export
RUN`` and ``--config RUN/config.toml`` reread the run's config.toml from wherever they are
started, and a simulated client reads the config the server sent. So every path-valued key is
made absolute as it is read (a file's against the file's folder, ``--set`` against the current
directory), and the run's config.toml stores them so. The path-valued keys:

- ``output.dir``;
- ``model.name`` when it is a path to a local model directory (else a hub id or a built-in name);
- ``data.sources[].path`` and ``test_path``, and a reward given as ``path/to/file.py:function``;
- ``tracking.mlflow_uri`` when it is a directory rather than a URI (``sqlite:///…``, ``http://…``).

Image paths inside a data file start at the data file's folder (fgrpo.tasks.images), so they
follow its ``path``. Values of the wrong type are left as they are, for validation to name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fgrpo.core.config_values import as_tables
from fgrpo.core.errors import ConfigError


def _absolute(value: Any, folder: Path) -> Any:
    if not isinstance(value, str) or not value:
        return value
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else (folder / path).resolve())


def _reward(spec: Any, folder: Path) -> Any:
    """``file.py:function`` with the file made absolute; ``package.module:function`` as it is."""
    if not isinstance(spec, str) or spec.count(":") != 1:
        return spec
    module, function = spec.split(":")
    return f"{_absolute(module, folder)}:{function}" if module.endswith(".py") else spec


def is_uri(value: Any) -> bool:
    """A tracking URI (a scheme before ``:``, such as sqlite:, file:, http:) rather than a path;
    True for what is no path at all, so it is left alone."""
    if not isinstance(value, str) or not value:
        return True
    scheme = value.split(":", 1)[0]
    return ":" in value and len(scheme) > 1 and scheme.replace("+", "").isalnum()


def resolve_source(table: dict[str, Any], folder: Path) -> dict[str, Any]:
    """One data source's table with its paths resolved against ``folder``."""
    out = dict(table)
    for key in ("path", "test_path"):
        if key in out:
            out[key] = _absolute(out[key], folder)
    if isinstance(out.get("rewards"), list):
        out["rewards"] = [_reward(spec, folder) for spec in out["rewards"]]
    return out


def resolve_tree(tree: dict[str, Any], folder: Path) -> dict[str, Any]:
    """A config tree (a TOML file's tables, or ``--set`` overrides) with its paths resolved."""
    out = dict(tree)
    output, model, data = (out.get(k) for k in ("output", "model", "data"))
    if isinstance(output, dict) and "dir" in output:
        out["output"] = {**output, "dir": _absolute(output["dir"], folder)}
    tracking = out.get("tracking")
    if isinstance(tracking, dict) and not is_uri(tracking.get("mlflow_uri")):
        out["tracking"] = {**tracking, "mlflow_uri": _absolute(tracking["mlflow_uri"], folder)}
    name = model.get("name") if isinstance(model, dict) else None
    # a path-like name ("models/mine", "./mine") that is a directory there; a hub id ("org/model")
    # or a built-in name ("tiny") stays as it is
    if (
        isinstance(name, str)
        and ("/" in name or name.startswith((".", "~")))
        and Path(_absolute(name, folder)).is_dir()
    ):
        out["model"] = {**model, "name": _absolute(name, folder)}
    if isinstance(data, dict) and "sources" in data:
        try:
            tables = as_tables(data["sources"], "data.sources")
        except ConfigError:
            return out  # malformed: validation names it
        out["data"] = {**data, "sources": [resolve_source(t, folder) for t in tables]}
    return out
