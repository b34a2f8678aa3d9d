"""The one place fgrpo starts Flower's Simulation Runtime (Flower 1.42).

``flwr run`` runs a local simulation as: a managed local SuperLink starts a ``flwr-simulation``
process, whose ``flwr.simulation.app.run_simulation_process`` loads the ServerApp and ClientApp
from the app's FAB and calls ``flwr.simulation.run_simulation._run_simulation``. The public
``flwr.simulation.run_simulation`` is that same function behind a deprecation banner.

``fgrpo run`` gives Flower its apps as Python objects (the ServerApp closes over the resolved
Config, the run directory, the resume flag and the console) and keeps the ServerApp in its own
process (fgrpo.runtime.flower_dispatch's patch, the progress display). So it calls
``_run_simulation`` directly: the runtime ``flwr run`` uses, without a SuperLink, a FAB (built
from a project's pyproject.toml, which an installed fgrpo lacks) and the banner. That function is
private: ``check_flower`` (run on import, and by tests/test_console.py) fails loudly, naming what
changed, when a Flower release moves it.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from flwr import __version__
from flwr.clientapp import ClientApp
from flwr.serverapp import ServerApp
from flwr.supercore.telemetry import EventType

from fgrpo.core.errors import UserInputError

RUNTIME_MODULE = (
    "flwr.simulation.run_simulation"  # the module (its package re-exports a function of that name)
)
RUNTIME_FUNCTION = "_run_simulation"
FLWR_RUN_CALLER = "flwr.simulation.app"  # what `flwr run`'s flwr-simulation process executes
USED_PARAMETERS = (
    "num_supernodes",
    "exit_event",
    "client_app",
    "server_app",
    "backend_name",
    "backend_config",
    "verbose_logging",
)


class FlowerChanged(UserInputError):
    """The installed Flower no longer has the simulation entry point this module relies on
    (the CLI prints it as one line: the fix is installing the Flower fgrpo pins)."""

    kind = "unsupported Flower"


def check_flower() -> Any:
    """Flower's ``_run_simulation``, after checking it takes the arguments fgrpo passes and is
    still what ``flwr run``'s simulation process calls."""

    where = f"{RUNTIME_MODULE}.{RUNTIME_FUNCTION}"
    runtime = getattr(importlib.import_module(RUNTIME_MODULE), RUNTIME_FUNCTION, None)
    if runtime is None:
        raise FlowerChanged(
            f"flwr {__version__} has no {where}; fgrpo run needs flwr 1.42 (pip install flwr==1.42.0)"
        )
    missing = [p for p in USED_PARAMETERS if p not in inspect.signature(runtime).parameters]
    if missing:
        raise FlowerChanged(
            f"flwr {__version__}'s {where} lacks {', '.join(missing)}; fgrpo run needs flwr 1.42"
        )
    caller = importlib.import_module(FLWR_RUN_CALLER)
    if getattr(caller, RUNTIME_FUNCTION, None) is not runtime:
        raise FlowerChanged(
            f"flwr {__version__}'s `flwr run` ({FLWR_RUN_CALLER}) no longer runs {where}; "
            "fgrpo run would be on a path Flower does not use"
        )
    return runtime


_RUNTIME = check_flower()


def simulate(
    server_app: ServerApp,
    client_app: ClientApp,
    num_supernodes: int,
    backend_config: dict[str, Any],
) -> None:
    """Run ``server_app`` against ``num_supernodes`` simulated nodes running ``client_app`` on
    Ray."""
    _RUNTIME(
        num_supernodes=num_supernodes,
        exit_event=EventType.PYTHON_API_RUN_SIMULATION_LEAVE,
        client_app=client_app,
        server_app=server_app,
        backend_name="ray",
        backend_config=backend_config,
        verbose_logging=False,
    )
