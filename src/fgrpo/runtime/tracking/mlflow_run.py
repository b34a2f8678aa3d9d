"""MLflow: one run per fgrpo run in the store of ``tracking.mlflow_uri``, under the experiment
``tracking.experiment`` (a sweep's points share one). A directory store is SQLite (``mlflow.db``)
with the artifacts beside it: MLflow's plain-file store is deprecated. ``mlflow ui
--backend-store-uri sqlite:///DIR/mlflow.db`` opens it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from fgrpo.core.config_paths import is_uri
from fgrpo.runtime.tracking.spec import TrackedRun

BATCH = 100  # MLflow's limit of params per log_batch call
AXES = ("round", "local_step")
KIND_TAG = "mlflow.experimentKind"  # MLflow 3's UI opens such an experiment on its runs and charts


def store(uri: str, out_dir: Path) -> tuple[str, str | None]:
    """(tracking URI, artifact location for a new experiment) of ``tracking.mlflow_uri``."""
    if uri and is_uri(uri):
        return uri, None  # the server's or the database's own artifact root
    folder = Path(uri) if uri else out_dir / "mlflow"
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'mlflow.db'}", (folder / "artifacts").as_uri()


class MlflowRun:
    name = "mlflow"

    def __init__(self, run: TrackedRun) -> None:
        # deferred: mlflow is an optional extra (fgrpo[tracking])
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        tracking_uri, artifacts = store(run.mlflow_uri, run.out_dir)
        self.client = MlflowClient(tracking_uri)
        self.done = {axis: -1 for axis in AXES}  # the last step of each axis in the store
        if run.saved.get("run_id"):  # a resumed run continues its tracked run
            self.run_id = run.saved["run_id"]
            self.client.update_run(self.run_id, status="RUNNING")
            for axis in AXES:  # a killed session may have logged past what tracking.json says
                history = self.client.get_metric_history(self.run_id, axis)
                self.done[axis] = max((m.step for m in history), default=-1)
            return
        found = self.client.get_experiment_by_name(run.experiment)
        experiment_id = (
            found.experiment_id
            if found
            else self.client.create_experiment(
                run.experiment,
                artifact_location=artifacts,
                tags={KIND_TAG: "custom_model_development"},
            )
        )
        tags = {
            "fgrpo.run_dir": str(run.out_dir),
            **({"fgrpo.group": run.group} if run.group else {}),
        }
        created = self.client.create_run(experiment_id, run_name=run.out_dir.name, tags=tags)
        self.run_id = created.info.run_id
        items = [Param(k, v[:6000]) for k, v in sorted(run.params.items())]
        for i in range(0, len(items), BATCH):
            self.client.log_batch(self.run_id, params=items[i : i + BATCH])

    def state(self) -> dict[str, Any]:
        return {"run_id": self.run_id}

    def log(self, step: int, scalars: dict[str, float], axis: str = "round") -> None:
        # deferred: mlflow is an optional extra (fgrpo[tracking])
        from mlflow.entities import Metric

        if step <= self.done[axis]:
            return
        now = int(time.time() * 1000)
        # the axis itself, as a metric: what a resumed run reads back to log no step twice
        metrics = [Metric(k, v, now, step) for k, v in scalars.items()] + [
            Metric(axis, step, now, step)
        ]
        for i in range(0, len(metrics), 1000):  # MLflow's limit of metrics per batch
            self.client.log_batch(self.run_id, metrics=metrics[i : i + 1000])

    def finish(self, out_dir: Path, plots: list[Path]) -> None:
        self.client.log_artifacts(self.run_id, str(out_dir / "final" / "adapter"), "adapter")
        for plot in plots:
            self.client.log_artifact(self.run_id, str(plot), "plots")
        for path in (out_dir / "summary.json", out_dir / "config.toml"):
            self.client.log_artifact(self.run_id, str(path))
        self.client.set_terminated(self.run_id)
