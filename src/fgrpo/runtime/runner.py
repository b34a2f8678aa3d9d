"""Run one experiment as a Flower simulation on this machine."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fgrpo.client.app import app as client_app
from fgrpo.core.config import Config
from fgrpo.runtime import flower_simulation
from fgrpo.runtime.centralized import run_centralized
from fgrpo.runtime.flower_dispatch import install
from fgrpo.runtime.ray_cluster import close_leftover, join
from fgrpo.runtime.server_app import make_server_app
from fgrpo.server.strategies import strategy_entry

if TYPE_CHECKING:
    from fgrpo.runtime.console import RunConsole


def backend_config(cfg: Config, log_to_driver: bool = True) -> dict[str, Any]:
    """Ray's settings; ``log_to_driver`` False leaves the workers' output off this process's
    streams."""
    return {
        "client_resources": {
            "num_cpus": cfg.federation.client_cpus,
            "num_gpus": cfg.federation.client_gpus,
        },
        "init_args": {"logging_level": "ERROR", "log_to_driver": log_to_driver},
    }


def quiet_flower() -> None:
    """Flower logs every message at INFO; our own progress lines say what matters."""
    logging.getLogger("flwr").setLevel(logging.WARNING)
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def connect_ray(init_args: dict[str, Any]) -> None:
    """Join a sweep's (or the user's) cluster at RAY_ADDRESS, if any; else have Flower start a
    cluster of the run's own: Ray's default would join any cluster running on the machine (another
    sweep's, a leaked one). Either way, not a connection an earlier run in this process left."""
    close_leftover()
    if not join(init_args):
        init_args["address"] = "local"


def run_experiment(
    cfg: Config, out_dir: Path, resume: bool = False, console: RunConsole | None = None
) -> dict[str, Any]:
    """Simulate ``cfg.federation.num_clients`` clients; return the run's summary. With ``resume``,
    continue the run in ``out_dir`` from its checkpoint (fgrpo.runtime.run_setup checks it may). Under a
    ``console`` (``fgrpo run``) the lines go to its display and library output to run.log."""

    quiet_flower()
    out_dir = out_dir.resolve()
    progress = console.line if console else None
    if not strategy_entry(cfg.strategy.name).in_flower:  # one trainer on the pooled data
        if console:
            console.status(
                f"{cfg.strategy.name} reference: one trainer on the pooled data (round lines above)"
            )
        return run_centralized(cfg, out_dir, progress)

    install()  # Flower's dispatcher polls every node ten times a second; ask only those with mail
    backend = backend_config(cfg, log_to_driver=console is None or console.verbose)
    connect_ray(backend["init_args"])
    flower_simulation.simulate(
        server_app=make_server_app(cfg, out_dir, resume, console),
        client_app=client_app,
        num_supernodes=cfg.federation.num_clients,
        backend_config=backend,
    )
    summary_path = out_dir / "summary.json"
    if not summary_path.is_file():
        where = console.log_path if console and not console.verbose else "the log above"
        raise RuntimeError(f"the simulation ended without writing {summary_path}; see {where}")
    return json.loads(summary_path.read_text())
