"""``fgrpo flwr-stop``: end the local SuperLink that ``flwr run .`` started.

For a local simulation Flower 1.42's CLI launches ``flower-superlink`` detached (its own session)
and leaves it running after the run (flwr.cli.local_superlink); Flower has no command to stop it.
We find it by the log file Flower gives it, inside the Flower home (``$FLWR_HOME``, else
``~/.flwr``), so a SuperLink anyone started by hand, or for another Flower home, is never touched.
"""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

import psutil
from flwr.supercore.utils import get_flwr_home


def flower_home() -> Path:
    return get_flwr_home()  # Flower's own rule: $FLWR_HOME, else ~/.flwr


def local_superlinks(home: Path) -> list[psutil.Process]:
    """The SuperLinks Flower's CLI started for ``home``: ``flower-superlink ... --log-file
    <home>/local-superlink/superlink.log`` (the path flwr.cli.local_superlink gives them)."""
    log_file = str(home / "local-superlink" / "superlink.log")
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        args = proc.info["cmdline"] or []
        if (
            any(Path(a).name == "flower-superlink" for a in args[:2])
            and "--log-file" in args
            and args.index("--log-file") + 1 < len(args)
            and args[args.index("--log-file") + 1] == log_file
        ):
            found.append(proc)
    return found


def stop_local_superlinks(home: Path, timeout: float = 10.0) -> list[int]:
    """Terminate ``home``'s local SuperLinks and everything they started (SuperExec, simulation
    processes); kill what has not exited after ``timeout`` seconds. Returns the SuperLinks' pids."""
    superlinks = local_superlinks(home)
    family = []
    for proc in superlinks:
        try:
            family += [proc, *proc.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
    for proc in family:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.terminate()
    _, alive = psutil.wait_procs(family, timeout=timeout)
    for proc in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    psutil.wait_procs(alive, timeout=timeout)
    return [p.pid for p in superlinks]


def cmd_flwr_stop(args: argparse.Namespace) -> int:
    del args
    home = flower_home()
    pids = stop_local_superlinks(home)
    if pids:
        print(f"fgrpo: stopped the local SuperLink of {home} (pid {', '.join(map(str, pids))})")
    else:
        print(f"fgrpo: no local SuperLink of {home} is running")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    stop = sub.add_parser(
        "flwr-stop", help="stop the local SuperLink `flwr run .` started (Flower leaves it running)"
    )
    stop.set_defaults(func=cmd_flwr_stop)
