"""Experiment tracking (``tracking.backends``): a run also logs to TensorBoard, MLflow or W&B, all
offline, beside its own metrics.jsonl.

Once: the resolved config as parameters (dotted keys) and the package versions
(``versions.<package>``). Per round (step = round, round 0 the starting model): the scalars of
fgrpo.runtime.tracking.scalars. At the end: the plots, and for MLflow the final adapter, the
summary and the config as artifacts.

A resumed run continues its tracked runs: ``tracking.json`` in the run directory keeps each
backend's run id and the last round logged. Rounds are logged after their checkpoint, so on resume
the checkpoint's rounds the trackers missed are replayed from metrics.jsonl, and no round is logged
twice (TensorBoard also purges what a killed session wrote past that round).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from pathlib import Path
from typing import Any

from fgrpo.core.config import Config
from fgrpo.core.errors import ConfigError
from fgrpo.runtime.tracking.mlflow_run import MlflowRun
from fgrpo.runtime.tracking.scalars import client_steps, round_scalars
from fgrpo.runtime.tracking.spec import TrackedRun
from fgrpo.runtime.tracking.tensorboard_run import TensorBoardRun
from fgrpo.runtime.tracking.wandb_run import WandbRun

BACKENDS = {"tensorboard": TensorBoardRun, "mlflow": MlflowRun, "wandb": WandbRun}
PACKAGES = {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb"}
STATE_FILE = "tracking.json"


def check_backends(cfg: Config) -> None:
    """One line naming the first backend whose package is not installed, before anything runs."""
    for backend in cfg.tracking.backends:
        if importlib.util.find_spec(PACKAGES[backend]) is None:
            raise ConfigError(
                "tracking.backends",
                f"{backend} is not installed; pip install 'fgrpo[tracking]' (or {PACKAGES[backend]})",
            )


def run_params(cfg: Config, versions: dict[str, str]) -> dict[str, str]:
    """The resolved config as dotted keys and the package versions, as text."""
    params = {
        k: v if isinstance(v, str) else json.dumps(v) for k, v in sorted(cfg.flatten().items())
    }
    return {**params, **{f"versions.{k}": str(v) for k, v in versions.items()}}


class Tracker:
    """The run's backends; ``log_round`` after each checkpointed round, ``finish`` at the end."""

    def __init__(
        self, cfg: Config, out_dir: Path, versions: dict[str, str], resumed_after: int | None
    ) -> None:
        self.cfg, self.out_dir = cfg, out_dir
        self.path = out_dir / STATE_FILE
        saved = (
            json.loads(self.path.read_text())
            if resumed_after is not None and self.path.is_file()
            else {}
        )
        self.last_round = saved.get("last_round", -1)
        tracking = cfg.tracking
        spec = TrackedRun(
            out_dir=out_dir,
            params=run_params(cfg, versions),
            resumed_after=None if self.last_round < 0 else self.last_round,
            experiment=tracking.experiment or tracking.group or "fgrpo",
            group=tracking.group,
            mlflow_uri=tracking.mlflow_uri,
            steps_per_round=cfg.federation.local_steps,
        )
        self.runs = [
            BACKENDS[b](dataclasses.replace(spec, saved=saved.get(b, {})))
            for b in tracking.backends
        ]
        self.save()

    def save(self) -> None:
        state = {"last_round": self.last_round, **{r.name: r.state() for r in self.runs}}
        self.path.write_text(json.dumps(state, indent=2) + "\n")

    def log_round(self, record: dict[str, Any]) -> None:
        """One metrics.jsonl line (round 0: the starting model's evaluation), once."""
        rnd = int(record["round"])
        if rnd <= self.last_round:
            return
        scalars = round_scalars(record)
        steps = client_steps(record, self.cfg.federation.local_steps)
        for run in self.runs:
            run.log(rnd, scalars)
            for step, values in steps:
                run.log(step, values, axis="local_step")
        self.last_round = rnd
        self.save()

    def finish(self) -> None:
        plots = sorted((self.out_dir / "plots").glob("*.png"))
        for run in self.runs:
            run.finish(self.out_dir, plots)


def open_tracker(
    cfg: Config, out_dir: Path, versions: dict[str, str], resumed_after: int | None
) -> Tracker | None:
    return Tracker(cfg, out_dir, versions, resumed_after) if cfg.tracking.backends else None
