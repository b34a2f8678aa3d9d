"""No process of a run outlives it, whatever ends the ``fgrpo run`` process (SIGKILL included).

Ray's daemons do not reliably die with the process that started them: after a ``kill -9`` of a
run, ``ray::DashboardAgent`` and ``ray::RuntimeEnvAgent`` (children of the raylet) were left
running under init, where the process tree no longer leads to them and Ray's rewritten titles no
longer name the run. So ``fgrpo run`` starts this watchdog beside it (``guard``), in its own session
so that a Ctrl-C meant for the run does not reach it. While the run lives, the watchdog records its
descendants as they appear; once the run's process has ended, however it ended, it kills those
still running, their children, and every process whose environment carries the run's token
(``mark``: inherited by all the run starts, for what appeared since the last look; Ray's titles
overwrite part of the environment block /proc shows, so the token alone is not enough), until
none is left.

A run that joins a shared cluster (fgrpo.runtime.ray_cluster) does not pass the token to the
cluster's daemons or workers, so the sweep's cluster is never touched; the cluster stops its
job's workers itself when the run disconnects.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil

TOKEN_ENV = "FGRPO_RUN_TOKEN"
POLL_SECONDS = 0.5  # how soon after the run's death its leftovers start being killed (and how often its tree is read)
CLEANUP_SECONDS = (
    30  # leftovers that keep appearing (a raylet restarting workers) are chased this long
)


def mark() -> str:
    """Give this process (and so everything it starts from now on) a token of its own."""
    token = uuid.uuid4().hex
    os.environ[TOKEN_ENV] = token
    return token


def guard(token: str) -> subprocess.Popen:
    """Start the watchdog for this process and the processes that carry ``token``."""
    return subprocess.Popen(
        [sys.executable, "-m", __name__, str(os.getpid()), token],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )


def carries(proc: psutil.Process, token: str) -> bool:
    """Whether ``proc``'s environment holds ``token``. On Linux the raw block is searched: Ray's
    process titles overwrite the start of it with NULs, where psutil's ``environ()`` stops
    reading."""
    entry = f"{TOKEN_ENV}={token}"
    if sys.platform.startswith("linux"):
        try:
            block = Path(f"/proc/{proc.pid}/environ").read_bytes()
        except OSError as err:  # exited, or not ours to read
            raise psutil.AccessDenied(proc.pid) from err
        return entry.encode() in block.split(b"\0")
    return proc.environ().get(TOKEN_ENV) == token


def carriers(token: str) -> list[psutil.Process]:
    """Live processes (not this one) that carry ``token``; others' processes are unreadable and
    skipped."""
    found = []
    for proc in psutil.process_iter():
        if proc.pid == os.getpid():
            continue
        try:
            if carries(proc, token) and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except psutil.Error:  # exited, or not ours to read
            continue
    return found


def descendants(procs: list[psutil.Process]) -> list[psutil.Process]:
    """``procs`` still running, and their children now."""
    found = {}
    for proc in procs:
        try:
            for p in (proc, *proc.children(recursive=True)):
                if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                    found[p.pid] = p
        except psutil.Error:  # exited
            continue
    return list(found.values())


def clean(token: str, seen: list[psutil.Process] = (), seconds: float = CLEANUP_SECONDS) -> int:
    """Kill every carrier of ``token`` and every process of ``seen`` (and their children): the run
    is gone, nothing of it has work left to finish. How many were killed."""
    killed: set[int] = set()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        left = list(
            {
                p.pid: p
                for p in [*descendants(list(seen)), *carriers(token)]
                if p.pid != os.getpid()
            }.values()
        )
        if not left:
            break
        for proc in left:
            try:
                proc.kill()  # psutil checks the pid was not reused since ``proc`` was read
                killed.add(proc.pid)
            except psutil.Error:
                continue
        psutil.wait_procs(left, timeout=2)
    return len(killed)


def watch(parent: int, token: str) -> None:
    """Wait until ``parent`` has ended (this process is re-parented then), then clean up after it.
    Its descendants are recorded on the way: the token alone can be lost (below)."""
    seen: dict[int, psutil.Process] = {}
    root = psutil.Process(parent)
    while os.getppid() == parent:
        seen.update((p.pid, p) for p in descendants([root]) if p.pid != os.getpid())
        time.sleep(POLL_SECONDS)
    clean(token, list(seen.values()))


if __name__ == "__main__":
    watch(int(sys.argv[1]), sys.argv[2])
