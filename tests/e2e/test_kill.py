"""No process of a run outlives it: a real ``fgrpo run`` on its own Ray cluster, ended mid-run by
SIGINT, SIGTERM or SIGKILL, leaves none of its processes (Ray's daemons and workers) behind."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from fgrpo.runtime.ray_cluster import ADDRESS_ENV

CONFIG = textwrap.dedent("""\
    [model]
    name = "tiny-random"
    [federation]
    num_clients = 2
    rounds = 200
    local_steps = 1
    [data]
    train_size = 64
    test_size = 8
    [grpo]
    per_device_train_batch_size = 8
    """)
UP_SECONDS = 240  # a loaded 2-core machine takes a while to import torch and start Ray
GRACE_SECONDS = 30
SESSION = re.compile(r"session_\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d_\d+_\d+")


def tree(proc: psutil.Process) -> list[psutil.Process]:
    try:
        return proc.children(recursive=True)
    except psutil.Error:
        return []


def running(proc: psutil.Process) -> bool:
    try:
        return (
            proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
        )  # a container's init may not reap
    except psutil.Error:
        return False


def session_processes(session: str) -> list[psutil.Process]:
    """Live processes whose cmdline names the run's Ray session (the raylet, gcs_server, log
    monitor...)."""
    found = []
    for proc in psutil.process_iter():
        try:
            if any(session in part for part in proc.cmdline()) and running(proc):
                found.append(proc)
        except psutil.Error:
            continue
    return found


def wait_for_ray(run: subprocess.Popen, log: Path) -> list[psutil.Process]:
    """The run's descendants once its Ray cluster is up and a round's clients are running."""
    root = psutil.Process(run.pid)
    deadline = time.monotonic() + UP_SECONDS
    while time.monotonic() < deadline:
        assert run.poll() is None, f"the run ended early: {log.read_text()[-3000:]}"
        names = " ".join(" ".join(p.cmdline()) for p in tree(root) if running(p))
        # a round done: its clients' workers exist (titled by the task they run, or ray::IDLE
        # between)
        if (
            all(part in names for part in ("raylet", "DashboardAgent", "RuntimeEnvAgent"))
            and "round 1/" in log.read_text()
        ):
            return tree(root)
        time.sleep(0.5)
    pytest.fail(f"Ray did not come up within {UP_SECONDS} s: {log.read_text()[-3000:]}")


@pytest.mark.parametrize(
    "sig",
    [
        signal.SIGKILL,  # the one no handler sees: only the watchdog can clean up
        pytest.param(signal.SIGTERM, marks=pytest.mark.slow),
        pytest.param(signal.SIGINT, marks=pytest.mark.slow),
    ],
    ids=lambda s: s.name,
)
def test_no_process_outlives_a_killed_run(tmp_path, sig):
    config = tmp_path / "run.toml"
    config.write_text(CONFIG)
    log = tmp_path / "out.txt"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    env.pop(ADDRESS_ENV, None)  # the run starts its own cluster: the case that leaked
    with log.open("w") as out:
        # its own session: the signal goes to the run alone, and the test can clean up its group
        run = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "fgrpo",
                "run",
                "--config",
                str(config),
                "--out",
                str(tmp_path / "run"),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    recorded: list[psutil.Process] = []
    try:
        recorded = wait_for_ray(run, log)
        session = next(
            m.group() for p in recorded for m in [SESSION.search(" ".join(p.cmdline()))] if m
        )
        os.kill(run.pid, sig)
        status = run.wait(timeout=GRACE_SECONDS)  # it stops at once, with the signal's status
        assert status == (-sig if sig == signal.SIGKILL else 128 + sig)
        if sig != signal.SIGKILL:
            assert "fgrpo: interrupted" in log.read_text()
        deadline = time.monotonic() + GRACE_SECONDS
        while time.monotonic() < deadline:
            left = [p for p in recorded if running(p)] + session_processes(session)
            if not left:
                break
            time.sleep(0.5)
        assert not left, (
            f"left running after {sig.name}: {[(p.pid, p.name()) for p in left if running(p)]}"
        )
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
        for proc in recorded:
            try:
                proc.kill()
            except psutil.Error:
                continue
