"""The ServerApp. ``fgrpo run`` builds one around a resolved Config; ``flwr run .``
uses the module-level ``app``, which reads the same config from Flower's run_config."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from fgrpo.core.config import Config
from fgrpo.runtime.centralized import run_centralized
from fgrpo.runtime.configs import config_from_flat
from fgrpo.runtime.journal import RunJournal
from fgrpo.server.federation import federate
from fgrpo.server.strategies import strategy_entry

if TYPE_CHECKING:
    from fgrpo.runtime.console import RunConsole


def run_federation(
    grid: Grid,
    cfg: Config,
    out_dir: Path,
    progress: Callable[[str], None] | None = None,
    resume: bool = False,
    clients_dir: Path | None = None,
    round_started: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """The run in ``out_dir`` (with ``resume``, the rounds after its checkpoint): its journal
    around the server's round loop; returns the summary. A strategy that is not a Flower one
    (the centralized reference, e.g. under `flwr run .`) trains in this process instead."""
    progress = progress or (lambda line: print(line, file=sys.stdout, flush=True))
    if not strategy_entry(cfg.strategy.name).in_flower:
        return run_centralized(cfg, out_dir, progress)
    journal = RunJournal(cfg, out_dir, progress, resume)
    return federate(grid, cfg, journal, clients_dir, round_started)


def make_server_app(
    cfg: Config, out_dir: Path, resume: bool = False, console: RunConsole | None = None
) -> ServerApp:
    """Simulation on this machine: clients keep their state between rounds in ``out_dir/clients``;
    the round lines and round starts go to ``console`` (``fgrpo run``'s display) when given."""
    server_app = ServerApp()

    @server_app.main()
    def main(grid: Grid, context: Context) -> None:
        del context
        hooks = (
            {"progress": console.line, "round_started": console.round_started} if console else {}
        )
        run_federation(grid, cfg, out_dir, resume=resume, clients_dir=out_dir / "clients", **hooks)

    return server_app


app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    cfg = config_from_flat(dict(context.run_config))
    summary = run_federation(grid, cfg, Path(cfg.output.dir))
    if summary["rounds_aggregated"] == 0:  # marks the Flower run as failed
        raise RuntimeError(
            f"no round aggregated an update; see 'failures' in {cfg.output.dir}/metrics.jsonl"
        )
