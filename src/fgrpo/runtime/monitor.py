"""A light resource monitor: one sample a second of a process tree's CPU and memory (and the GPU's).

`fgrpo sweep` watches each point's `fgrpo run` process and the Ray processes it starts (all of
them descend from it) and records wall time, mean CPU %, peak RSS (summed over the processes, so
shared pages count once per process: an upper bound) and, where ``nvidia-smi``
exists, GPU utilisation and memory in the point's ``resources.json``. The GPU numbers are the
whole device's, not only this run's: nvidia-smi is shared by every process on it.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from statistics import fmean
from typing import Any

import psutil


def gpu_sample() -> tuple[float, float] | None:
    """(utilisation %, memory used MiB) summed over the GPUs, or None without nvidia-smi."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(
            [
                "nvidia-smi",
                "--query-gpu=utilization.gpu,memory.used",
                "--format=csv,noheader,nounits",
            ],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    rows = [
        [float(v) for v in line.split(",")] for line in out.strip().splitlines() if line.strip()
    ]
    return (sum(r[0] for r in rows), sum(r[1] for r in rows)) if rows else None


class TreeMonitor:
    """Samples ``pid`` and its descendants (and those of ``also``) every ``interval`` seconds in a
    daemon thread."""

    def __init__(self, pid: int, interval: float = 1.0, also: tuple[int, ...] = ()) -> None:
        self.roots = [
            psutil.Process(p) for p in (pid, *also)
        ]  # ``also``: e.g. a shared Ray cluster's daemons
        self.interval = interval
        self.cpu: list[float] = []
        self.rss: list[int] = []
        self.gpu: list[tuple[float, float]] = []
        self._seen: dict[
            int, psutil.Process
        ] = {}  # cpu_percent needs the same object between calls
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._start = time.monotonic()

    def __enter__(self) -> TreeMonitor:
        self._start = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.seconds = time.monotonic() - self._start

    def _tree(self) -> list[psutil.Process]:
        procs = []
        for root in self.roots:
            try:
                procs += [root, *root.children(recursive=True)]
            except psutil.Error:  # the root has exited
                continue
        alive = {p.pid: self._seen.get(p.pid, p) for p in procs}
        self._seen = alive
        return list(alive.values())

    def sample(self) -> None:
        cpu, rss = 0.0, 0
        for proc in self._tree():
            try:
                cpu += proc.cpu_percent(
                    None
                )  # since this object's previous call (0.0 on the first)
                rss += proc.memory_info().rss
            except psutil.Error:  # exited between listing and reading
                continue
        self.cpu.append(cpu)
        self.rss.append(rss)
        gpu = gpu_sample()
        if gpu is not None:
            self.gpu.append(gpu)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def record(self) -> dict[str, Any]:
        """resources.json: CPU % is of one core (200 = two cores busy), as top shows it."""
        cpu = self.cpu[1:] or self.cpu  # the first sample of each process reads 0
        result: dict[str, Any] = {
            "wall_seconds": round(getattr(self, "seconds", time.monotonic() - self._start), 1),
            "samples": len(self.cpu),
            "cpu_percent_mean": round(fmean(cpu), 1) if cpu else None,
            "cpu_count": psutil.cpu_count(),
            "peak_rss_mb": round(max(self.rss) / 2**20, 1) if self.rss else None,
        }
        if self.gpu:
            result["gpu_util_percent_mean"] = round(fmean(g[0] for g in self.gpu), 1)
            result["gpu_memory_peak_mb"] = max(g[1] for g in self.gpu)
        return result
