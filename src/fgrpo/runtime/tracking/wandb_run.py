"""Weights & Biases, offline: a run in ``<run dir>/wandb/`` that ``wandb sync`` uploads later. The
rounds are the x-axis ``round``; ``tracking.client_steps`` curves run on ``local_step``."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from fgrpo.runtime.tracking.spec import TrackedRun


class WandbRun:
    name = "wandb"

    def __init__(self, run: TrackedRun) -> None:
        # deferred: wandb is an optional extra (fgrpo[tracking])
        import wandb

        self.wandb = wandb
        self.run = wandb.init(
            mode="offline",
            dir=str(run.out_dir),
            project=run.experiment,
            group=run.group or None,
            name=run.out_dir.name,
            id=run.saved.get("id") or uuid.uuid4().hex[:12],
            resume="allow",  # the same run id: `wandb sync` can continue the run
            config=run.params,
            settings=wandb.Settings(silent=True, console="off", x_disable_stats=True),
        )
        self.run.define_metric("round")
        self.run.define_metric("local_step")
        self.run.define_metric("client-steps/*", step_metric="local_step")
        self.run.define_metric("*", step_metric="round")

    def state(self) -> dict[str, Any]:
        return {"id": self.run.id}

    def log(self, step: int, scalars: dict[str, float], axis: str = "round") -> None:
        self.run.log({**scalars, axis: step})

    def finish(self, out_dir: Path, plots: list[Path]) -> None:
        self.run.log({f"plots/{p.stem}": self.wandb.Image(str(p)) for p in plots})
        self.run.finish()
