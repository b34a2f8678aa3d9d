"""What every tracking backend is opened with."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class TrackedRun:
    out_dir: Path  # the fgrpo run directory
    params: dict[str, str]  # the config's dotted keys and the package versions, as text
    resumed_after: int | None  # None: a new run; else the last round the trackers logged
    experiment: str  # MLflow experiment, W&B project
    group: str  # the sweep: W&B group, MLflow tag
    mlflow_uri: str  # tracking.mlflow_uri
    steps_per_round: int  # local steps a round, for the client-step axis
    saved: dict[str, Any] = field(default_factory=dict)  # this backend's tracking.json entry
