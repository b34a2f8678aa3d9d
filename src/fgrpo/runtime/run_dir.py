"""The run directory: resolved config, package versions, metrics.jsonl, summary.json.

Layout::

    DIR/config.toml        resolved config (reload with `fgrpo run --config DIR/config.toml`)
    DIR/versions.json      python and package versions
    DIR/grpo_settings.json TRL GRPOConfig settings (rl.algorithm preset + grpo.* overrides)
    DIR/metrics.jsonl      one JSON object per round
    DIR/summary.json       the run at a glance
    DIR/plots/*.png        accuracy and reward against round
    DIR/checkpoint/        latest completed round: global adapter, strategy and RNG state (--resume)
    DIR/clients/<id>/      clients' own state between rounds (simulation; see fgrpo.client.persistence)
    DIR/final/adapter/     the final global adapter, PEFT format
    DIR/run.log            library and worker output of `fgrpo run` (fgrpo.runtime.console)
    DIR/tracking.json      tracking.backends: each tracked run's id, the last round logged
    DIR/tensorboard/ DIR/mlflow/ DIR/wandb/   what those backends write (fgrpo.runtime.tracking)
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import tomli_w

from fgrpo.core.config import Config
from fgrpo.core.rl import preset

TRACKED_PACKAGES = (
    "fgrpo",
    "flwr",
    "flwr-datasets",
    "trl",
    "transformers",
    "peft",
    "torch",
    "datasets",
    "math-verify",
)
TRACKING_PACKAGES = ("tensorboard", "mlflow-skinny", "mlflow", "wandb")  # where installed


def package_versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    for name in TRACKING_PACKAGES:
        with contextlib.suppress(PackageNotFoundError):
            found[name] = version(name)
    return found


def read_versions(out_dir: Path) -> dict[str, str]:
    return json.loads((out_dir / "versions.json").read_text())


def grpo_settings_record(cfg: Config) -> dict[str, Any]:
    """Which TRL GRPOConfig settings the rl.algorithm preset produced, and what grpo.* overrode."""

    return {
        "algorithm": cfg.rl.algorithm,
        "preset": preset(cfg.rl.algorithm),
        "overrides": dict(cfg.grpo),
        "settings": cfg.grpo_settings(),  # the keyword arguments every client's GRPOConfig receives
    }


def prepare(out_dir: Path, cfg: Config) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    write_config(out_dir, cfg)
    (out_dir / "versions.json").write_text(json.dumps(package_versions(), indent=2) + "\n")
    (out_dir / "grpo_settings.json").write_text(
        json.dumps(grpo_settings_record(cfg), indent=2) + "\n"
    )
    (out_dir / "metrics.jsonl").write_text("")


def write_config(out_dir: Path, cfg: Config) -> None:
    """config.toml, replaced atomically (a resume that extends federation.rounds rewrites it)."""
    tmp = out_dir / "config.toml.tmp"
    tmp.write_text(tomli_w.dumps(cfg.to_dict()))
    tmp.replace(out_dir / "config.toml")


def truncate_metrics(out_dir: Path, length: int) -> None:
    """Cut metrics.jsonl back to ``length`` bytes: drops a round logged after the last
    checkpoint."""
    with (out_dir / "metrics.jsonl").open("r+b") as fh:
        fh.truncate(length)


def metrics_length(out_dir: Path) -> int:
    return (out_dir / "metrics.jsonl").stat().st_size


def append_round(out_dir: Path, record: dict[str, Any]) -> None:
    with (out_dir / "metrics.jsonl").open("a") as fh:
        fh.write(json.dumps(record) + "\n")
        fh.flush()
        os.fsync(fh.fileno())  # on disk before the checkpoint that counts its length


def read_rounds(out_dir: Path) -> list[dict[str, Any]]:
    lines = (out_dir / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def write_summary(out_dir: Path, summary: dict[str, Any]) -> None:
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
