"""The ServerApp. ``fgrpo run`` builds one around a resolved Config; ``flwr run .``
uses the module-level ``app``, which reads the same config from Flower's run_config."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from ..config import Config, config_from_flat
from .federation import run_federation

if TYPE_CHECKING:
    from ..experiments.console import RunConsole


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
