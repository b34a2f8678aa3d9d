"""TensorBoard: event files in ``<run dir>/tensorboard`` (``tensorboard --logdir`` the run, or a
sweep's directory to compare its points, each a sub-directory). ``tracking.client_steps`` curves
are a run of their own beside it (``tensorboard/client-steps``): TensorBoard's purge on resume
drops every tag's events past one step, and rounds and local steps count differently."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fgrpo.runtime.tracking.spec import TrackedRun


class TensorBoardRun:
    name = "tensorboard"

    def __init__(self, run: TrackedRun) -> None:
        self.directory = run.out_dir / "tensorboard"
        # A resumed run drops whatever an earlier session logged past the last round it counts,
        # so no round shows twice.
        after = run.resumed_after
        self.last = {
            "round": after,
            "local_step": None if after is None else after * run.steps_per_round,
        }
        self.writers: dict[str, Any] = {}
        if after is None:
            table = "\n".join(f"| {k} | {v} |" for k, v in sorted(run.params.items()))
            self.writer("round").add_text("config", "| key | value |\n| --- | --- |\n" + table, 0)

    def writer(self, axis: str) -> Any:
        if axis not in self.writers:
            # deferred: tensorboard is an optional extra (fgrpo[tracking])
            from torch.utils.tensorboard import SummaryWriter

            path = self.directory if axis == "round" else self.directory / "client-steps"
            purge = None if self.last[axis] is None else self.last[axis] + 1
            self.writers[axis] = SummaryWriter(log_dir=str(path), purge_step=purge)
        return self.writers[axis]

    def state(self) -> dict[str, Any]:
        return {}

    def log(self, step: int, scalars: dict[str, float], axis: str = "round") -> None:
        writer = self.writer(axis)
        for key, value in scalars.items():
            writer.add_scalar(key, value, step)
        writer.flush()

    def finish(self, out_dir: Path, plots: list[Path]) -> None:
        # deferred: matplotlib is only needed once, for the closing plots
        from matplotlib.image import imread

        for plot in plots:
            image = imread(plot)[..., :3]  # RGBA floats in [0, 1]
            self.writer("round").add_image(
                f"plots/{plot.stem}", np.asarray(image), 0, dataformats="HWC"
            )
        for writer in self.writers.values():
            writer.close()
