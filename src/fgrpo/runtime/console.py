"""What a person sees during ``fgrpo run``: one progress display, our round lines, the summary.

Everything else the run prints goes to ``RUN_DIR/run.log``: Python warnings, Flower's log lines,
Ray's messages and, through fgrpo.client.progress, the clients' library output in the Ray
workers. The process's own file descriptors 1 and 2 are pointed at run.log for the duration (so
output from C code and from handlers that captured ``sys.stderr`` at import lands there too); the
display and our lines write to a copy of the original stdout. ``verbose`` leaves both streams on
the terminal and the workers' output reaching it through Ray (``log_to_driver``), as before.

The display: the round (rounds done / total), and within it the clients done / sampled and the
local GRPO steps taken, summed and per running client, read from the files the clients write
(fgrpo.client.progress). It is drawn only on a terminal; piped or captured output gets the lines.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import threading
from pathlib import Path
from typing import IO, Any

from flwr.supercore.logger import update_console_handler
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Column

from fgrpo.client.progress import PROGRESS_DIR_ENV, RUN_LOG_ENV, point_output_at

POLL_SECONDS = 0.5
RUNNING_SHOWN = 4  # running clients named on the display


def client_steps(directory: Path, server_round: int) -> dict[str, tuple[int, int]]:
    """(step, steps) of every client whose progress file is for ``server_round``."""
    found: dict[str, tuple[int, int]] = {}
    for path in directory.glob("*.json"):
        try:
            entry = json.loads(path.read_text())
        except (OSError, ValueError):  # replaced while we looked: next poll
            continue
        if entry.get("round") == server_round:
            found[path.stem] = (int(entry["step"]), int(entry["steps"]))
    return found


def clients_text(
    sampled: int, steps_per_client: int, progress: dict[str, tuple[int, int]]
) -> tuple[str, int, int]:
    """The clients row's text, and its bar's (completed, total) local steps."""
    done = sum(step >= steps for step, steps in progress.values())
    taken = sum(min(step, steps) for step, steps in progress.values())
    total = max(sampled, len(progress)) * steps_per_client
    text = f"clients {done}/{sampled} done"
    running = sorted((cid, step, steps) for cid, (step, steps) in progress.items() if step < steps)
    if running:
        text += " | running " + ", ".join(
            f"{cid} {step}/{steps}" for cid, step, steps in running[:RUNNING_SHOWN]
        )
        text += " …" if len(running) > RUNNING_SHOWN else ""
    elif sampled and done >= sampled:
        text += " | aggregating, evaluating"
    elif not progress:
        text += " | starting clients"  # the first round also starts Ray and loads the model in every worker
    return text, taken, total


class RunConsole:
    """Context manager around one run: the display, our lines (``line``), and run.log."""

    def __init__(self, out_dir: Path, rounds: int, local_steps: int, verbose: bool = False) -> None:
        self.log_path = out_dir / "run.log"
        self.rounds, self.local_steps, self.verbose = rounds, local_steps, verbose
        self.round, self.sampled = 0, 0
        self._stop = threading.Event()
        self._saved_fds: tuple[int, int] | None = None
        self._saved_env: dict[str, str | None] = {}
        self._screen: IO[str] | None = None

    def __enter__(self) -> RunConsole:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.progress_dir = Path(tempfile.mkdtemp(prefix="fgrpo-progress-"))
        env = {PROGRESS_DIR_ENV: str(self.progress_dir)}
        if not self.verbose:
            env[RUN_LOG_ENV] = str(self.log_path.resolve())
            self._screen = self._route_output_to_log()
        for key, value in env.items():  # Ray workers inherit these (fgrpo.client.progress)
            self._saved_env[key] = os.environ.get(key)
            os.environ[key] = value
        self.console = Console(file=self._screen or sys.stdout, highlight=False, soft_wrap=True)
        self.display = Progress(
            TextColumn(
                "{task.description}",
                table_column=Column(min_width=40, no_wrap=True, overflow="ellipsis"),
            ),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
            disable=not self.console.is_terminal,
            redirect_stdout=self.verbose,
            redirect_stderr=self.verbose,
        )
        self.rounds_row = self.display.add_task(
            "starting: model, data, round-0 evaluation", total=self.rounds
        )
        self.clients_row = self.display.add_task("", total=1, visible=False)
        self.display.start()
        self._poller = threading.Thread(target=self._poll, name="fgrpo-progress", daemon=True)
        self._poller.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._poller.join()
        self.display.stop()
        if self._saved_fds is not None:
            self._restore_output()
            update_console_handler(colored=True)
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(self.progress_dir, ignore_errors=True)

    def line(self, text: str) -> None:
        """One of our lines: above the display, and into run.log for context."""
        self.console.print(text, markup=False)
        if not self.verbose:
            print(text, flush=True)  # stdout is run.log here

    def abort(self, text: str) -> None:
        """The run ends now (a signal): the terminal back as it was, and ``text`` on it and in
        run.log."""
        self._stop.set()
        self.display.stop()
        if not self.verbose:
            print(text, flush=True)  # stdout is run.log here
        if self._saved_fds is not None:
            self._restore_output()
        print(text, file=sys.stderr, flush=True)

    def status(self, text: str) -> None:
        """Replace the rounds row's text (a run with no federated rounds to count)."""
        self.display.update(self.rounds_row, description=text)

    def round_started(self, server_round: int, sampled: int) -> None:
        self.round, self.sampled = server_round, sampled
        description = f"round {server_round}/{self.rounds}"
        self.display.update(self.rounds_row, description=description, completed=server_round - 1)
        self.display.reset(
            self.clients_row, completed=0, visible=False
        )  # its clock restarts with the round
        self._refresh_clients()

    def _refresh_clients(self) -> None:
        if not self.round:
            return
        text, taken, total = clients_text(
            self.sampled, self.local_steps, client_steps(self.progress_dir, self.round)
        )
        self.display.update(
            self.clients_row, description=text, completed=taken, total=max(total, 1), visible=True
        )

    def _poll(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            self._refresh_clients()

    def _route_output_to_log(self) -> IO[str]:
        """Point fds 1 and 2 at run.log; return a stream on the original stdout for the display."""
        self._saved_fds = (os.dup(1), os.dup(2))
        screen = os.fdopen(os.dup(self._saved_fds[0]), "w", buffering=1)
        point_output_at(self.log_path)
        return screen

    def _restore_output(self) -> None:
        assert self._saved_fds is not None and self._screen is not None
        sys.stdout.flush()
        sys.stderr.flush()
        self._screen.close()
        for fd, saved in zip((1, 2), self._saved_fds, strict=False):
            os.dup2(saved, fd)
            os.close(saved)
        self._saved_fds = None
