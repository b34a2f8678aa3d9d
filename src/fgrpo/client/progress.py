"""A simulated client's side of ``fgrpo run``'s console (fgrpo.runtime.console).

Clients run in Ray worker processes, which inherit the environment of the ``fgrpo run`` process
that starts Ray. When that process names them in the environment:

- ``FGRPO_RUN_LOG``: the worker's stdout and stderr (library warnings, "Loading weights" bars,
  Flower's actor messages) are appended to the run's ``run.log`` instead of reaching the screen;
- ``FGRPO_PROGRESS_DIR``: the client writes ``<client-id>.json`` there, ``{"round", "step",
  "steps"}``, when its round starts and after every local step; the console polls these files.

Deployed clients (``flwr run``, SuperNodes) have neither variable and do neither.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from flwr.supercore.logger import update_console_handler
from transformers import TrainerCallback

RUN_LOG_ENV = "FGRPO_RUN_LOG"
PROGRESS_DIR_ENV = "FGRPO_PROGRESS_DIR"

_routed_to: str | None = None  # the run.log this process's output already goes to


def point_output_at(log: str | Path) -> None:
    """Append this process's file descriptors 1 and 2 (C code's output too) to ``log``, and drop
    the colour codes from Flower's log lines, which now land in a file."""

    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    update_console_handler(colored=False)


def route_output_to_run_log() -> None:
    """Send this worker's stdout/stderr to the run's run.log, once."""
    global _routed_to
    target = os.environ.get(RUN_LOG_ENV)
    if (
        not target or target == _routed_to or not Path(target).parent.is_dir()
    ):  # not there: another machine
        return
    point_output_at(target)
    _routed_to = target


def write_progress(
    directory: Path, client_id: str, server_round: int, step: int, steps: int
) -> None:
    """Replace the client's progress file atomically (the console never reads half a file)."""
    path = directory / f"{client_id}.json"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"round": server_round, "step": step, "steps": steps}))
    os.replace(tmp, path)


class StepReporter(TrainerCallback):
    """Writes the client's progress file after each local GRPO step."""

    def __init__(self, directory: Path, client_id: str, server_round: int, steps: int) -> None:
        self.directory, self.client_id, self.server_round, self.steps = (
            directory,
            client_id,
            server_round,
            steps,
        )

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        write_progress(
            self.directory, self.client_id, self.server_round, state.global_step, self.steps
        )


def step_reporters(client_id: str, server_round: int, steps: int) -> list[StepReporter]:
    """The round's reporter (its file says step 0 already), or none outside ``fgrpo run``."""
    directory = os.environ.get(PROGRESS_DIR_ENV)
    if not directory or not Path(directory).is_dir():
        return []
    write_progress(Path(directory), client_id, server_round, 0, steps)
    return [StepReporter(Path(directory), client_id, server_round, steps)]
