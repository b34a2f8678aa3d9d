"""One Ray cluster for many runs: a sweep's points, or a cluster the user already has.

On its own, ``fgrpo run`` lets Flower start a local Ray cluster and stop it at the end: about
4-5 s of every run on a 2-core machine (benchmarks/results/perf.md). ``fgrpo sweep`` starts one
cluster for all its points instead (``SharedCluster``) and gives each point's process its address
in ``RAY_ADDRESS``; a run that finds ``RAY_ADDRESS`` set joins that cluster (``join``), which is
also how a run uses a multi-machine Ray cluster. Flower allows this: its RayBackend initialises
Ray only when it is not yet initialised, and its closing ``ray.shutdown()`` only disconnects a
process that joined a cluster. The cluster's Ray workers are started for each run (Ray binds a
worker process to one job), so runs stay isolated: only the cluster's start and stop are shared.
A run without ``RAY_ADDRESS`` starts a cluster of its own (Ray's address ``local``): Ray's default
would join whatever cluster it finds on the machine, another sweep's or a leaked one.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil

from fgrpo.client.progress import PROGRESS_DIR_ENV, RUN_LOG_ENV

ADDRESS_ENV = "RAY_ADDRESS"  # what ray.init() reads when given no address
START_SECONDS = 120  # a cluster not up by then is given up on (each point then starts its own)

# The holder process: starts a local cluster, prints its address, and stops it when its stdin
# closes (the sweep finished, or died).
# (A Ctrl-C reaches the whole process group: the holder ignores it and waits for the sweep.)
_HOLDER = (
    "import signal, sys, ray\n"
    "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
    "ctx = ray.init(include_dashboard=False, logging_level='ERROR', log_to_driver=False)\n"
    "print(ctx.address_info['gcs_address'], flush=True)\n"
    "try:\n"
    "    sys.stdin.read()\n"
    "finally:\n"
    "    ray.shutdown()\n"
)


class SharedCluster:
    """Context manager: a local Ray cluster alive while the block runs; ``env`` joins it.

    The cluster has what a run's own would have (every CPU and GPU Ray detects here). The sweep's
    resource monitor adds its processes (``node_pids``) to each federated point's own tree, as a
    run's own cluster would descend from the run.
    """

    def __init__(self, log: Path) -> None:
        self.log = log
        self.proc: subprocess.Popen[str] | None = None
        self.address = ""

    def __enter__(self) -> SharedCluster:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("a") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", _HOLDER],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
            )
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], START_SECONDS)
        self.address = self.proc.stdout.readline().strip() if ready else ""
        if not self.address:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError(f"could not start a Ray cluster for the sweep; see {self.log}")
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def node_pids(self) -> tuple[int, ...]:
        """The cluster's own processes (Ray's daemons; a run's workers descend from them), not
        the holder: a run's own cluster has no such extra driver."""
        assert self.proc is not None
        try:
            return tuple(child.pid for child in psutil.Process(self.proc.pid).children())
        except psutil.Error:
            return ()

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, ADDRESS_ENV: self.address}


def join(init_args: dict[str, Any]) -> bool:
    """Join the cluster at ``RAY_ADDRESS``, if set, with ``init_args`` (Flower's backend
    ``init_args``) and this run's worker environment; False when it is not set (Flower starts a
    cluster of its own). Flower's own PYTHONPATH rule is kept: this process's ``sys.path``."""
    if not os.environ.get(ADDRESS_ENV):
        return False
    # deferred: Ray takes seconds to import; only a shared cluster needs it
    import ray

    # What this run set for its Ray workers: a joined cluster's workers descend from the cluster,
    # not from this process, so they get it through the run's Ray job instead.
    worker_env = (PROGRESS_DIR_ENV, RUN_LOG_ENV, "TOKENIZERS_PARALLELISM")
    env_vars = {key: os.environ[key] for key in worker_env if key in os.environ}
    env_vars["PYTHONPATH"] = os.pathsep.join(
        [*sys.path, *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    ray.init(runtime_env={"env_vars": env_vars}, **init_args)
    return True


def close_leftover() -> None:
    """Close the Ray connection an earlier run in this process left open (one that raised): Flower
    would reuse it for its own cluster, and joining would be refused (ray.init runs once), both
    with that run's worker environment instead of this one's."""
    ray = sys.modules.get("ray")  # never imported here: nothing to close (and no import's cost)
    if ray is not None and ray.is_initialized():
        ray.shutdown()
