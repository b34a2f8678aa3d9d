"""The ``tracking`` section of a run's config: where each round's metrics also go."""

from __future__ import annotations

from dataclasses import dataclass

from fgrpo.core.config_values import setting

TRACKERS = ("tensorboard", "mlflow", "wandb")


@dataclass
class TrackingConfig:
    """Experiment tracking: every round also goes to TensorBoard, MLflow or W&B, all offline
    (fgrpo.runtime.tracking)."""

    backends: list[str] = setting(
        [],
        "where each round's metrics also go: tensorboard (event files in the run directory), "
        "mlflow (the store of tracking.mlflow_uri), wandb (an offline run in the run directory; "
        "`wandb sync` uploads it); none by default",
        choices=TRACKERS,
    )
    experiment: str = setting("", "MLflow experiment, W&B project; empty: the group, or fgrpo")
    group: str = setting("", "the sweep a run belongs to (W&B group); `fgrpo sweep` sets it")
    mlflow_uri: str = setting(
        "",
        "MLflow store: a directory (an SQLite store mlflow.db and the artifacts inside it) or a "
        "tracking URI (sqlite:///…, http://…); empty: mlflow/ in the run directory (a sweep: in "
        "the sweep directory)",
    )
    client_steps: bool = setting(
        False, "also log each client's local steps (TRL's logged values), named by client id"
    )
