"""`fgrpo sweep`: every point of a grid (fgrpo.runtime.grid) as one `fgrpo run`, resumably.

Layout of ``DIR``::

    DIR/sweep.json         the manifest: machine, start/update times, every point's values, status, seconds, error
    DIR/<point>/           the point's run directory (`fgrpo run`'s) + resources.json
    DIR/configs/<point>.toml  the point's resolved config, which `fgrpo run --config` receives
    DIR/logs/<point>.log   the point's output
    DIR/report/            `fgrpo report DIR`: figures and report.md
    DIR/mlflow/            tracking.backends with mlflow: the points' runs, in one experiment

Running the same command again resumes the sweep. Per point:

- ``done``: summary.json present and its config equal to the point's, or, its run directory gone,
  its line in the sweep's compact runs.jsonl (`fgrpo report --compact`) with an equal config:
  skipped (a committed sweep grows by new seeds or values without rerunning what it holds);
- a checkpoint but no summary (the run was killed): ``fgrpo run --resume`` continues it; if the
  resume is refused (e.g. a centralized run, an edited metrics.jsonl) it starts over;
- otherwise (never started, crashed before its first checkpoint, failed): ``--overwrite``.

A run directory holding a *different* config stops the sweep before anything runs: the sweep
file changed, and replacing finished results is the user's decision (a new DIR, or delete it).
Each point runs in its own process, so one point's crash is recorded and the sweep goes on. The
federated points share one Ray cluster, started once for the sweep (fgrpo.runtime.ray_cluster).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import tomli_w

from fgrpo.core.config import Config
from fgrpo.core.errors import ConfigError, UserInputError
from fgrpo.core.out_dir import check_writable_dir
from fgrpo.runtime.checkpoint import checkpoint_header
from fgrpo.runtime.configs import config_from_dict, load_config
from fgrpo.runtime.grid import Point, Sweep, about_point
from fgrpo.runtime.monitor import TreeMonitor
from fgrpo.runtime.preflight import check_run
from fgrpo.runtime.ray_cluster import ADDRESS_ENV, SharedCluster
from fgrpo.runtime.run_plan import plan_line
from fgrpo.runtime.sweep_runs import COMPACT, compact_records
from fgrpo.server.strategies import strategy_entry

MANIFEST = "sweep.json"
# Where a point lives and is tracked: the same point may be in a moved DIR.
IGNORED_KEYS = {"output.dir", "tracking.group", "tracking.mlflow_uri"}


@dataclass
class Outcome:
    returncode: int
    error: str | None  # the point's last error line when returncode != 0
    resources: dict[str, Any]


Runner = Callable[[list[str], Path], Outcome]  # `fgrpo` arguments, log file -> outcome


def fgrpo_subprocess(args: list[str], log: Path, cluster: SharedCluster | None = None) -> Outcome:
    """``python -m fgrpo ARGS`` with its output in ``log``, its process tree monitored; with a
    ``cluster``, the run joins it and the cluster's processes count as the run's."""

    with log.open("a") as fh:
        fh.write(f"$ fgrpo {' '.join(args)}\n")
        fh.flush()
        proc = subprocess.Popen(
            [sys.executable, "-m", "fgrpo", *args],
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=cluster.env if cluster else None,
        )
        with TreeMonitor(proc.pid, also=cluster.node_pids() if cluster else ()) as monitor:
            try:
                returncode = proc.wait()
            except (
                KeyboardInterrupt
            ):  # the run got the same Ctrl-C; let it stop before the sweep does
                proc.terminate()
                proc.wait()
                raise
    error = None
    if returncode != 0:
        lines = [
            line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()
        ]
        ours = [line for line in lines if line.startswith("fgrpo:")]  # the CLI's one-line errors
        error = (ours or lines or [f"exit code {returncode}"])[-1][:500]
    return Outcome(returncode, error, monitor.record())


def equal(cfg: Config, saved: Config) -> bool:
    """Whether ``saved`` is ``cfg``, output paths aside."""
    ours = {k: v for k, v in cfg.flatten().items() if k not in IGNORED_KEYS}
    return ours == {k: v for k, v in saved.flatten().items() if k not in IGNORED_KEYS}


def same_config(cfg: Config, run: Path) -> bool | None:
    """None: no config.toml in ``run``; else whether it is ``cfg`` (output paths aside)."""
    saved = run / "config.toml"
    return equal(cfg, load_config(saved)) if saved.is_file() else None


def action(point: Point, out: Path, compact: dict[str, dict[str, Any]]) -> str:
    """done | resume | rerun | new (see the module docstring); ``compact``: runs.jsonl's records."""

    run = out / point.name
    if not run.exists() and point.name in compact:
        if not equal(
            point.config, config_from_dict(compact[point.name]["config"], local_files=False)
        ):
            raise ConfigError(
                f"point {point.name}",
                f"its line in {out / COMPACT} differs from the sweep's config for this point; "
                "use a new --out (or delete that line)",
            )
        return "done"
    same = same_config(point.config, run)
    if same is False:
        raise ConfigError(
            f"point {point.name}",
            f"{run}/config.toml differs from the sweep's config for this point; "
            "use a new --out (or delete that run directory)",
        )
    if same and (run / "summary.json").is_file():
        return "done"
    resumable = strategy_entry(point.config.strategy.name).resumable
    if same and resumable and checkpoint_header(run) is not None:
        return "resume"
    return "rerun" if run.is_dir() and any(run.iterdir()) else "new"


def check_out(out: Path) -> None:

    check_writable_dir(out)
    if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST).is_file():
        raise ConfigError(
            "--out", f"{out} is not empty and holds no {MANIFEST}; a sweep needs its own directory"
        )


def preflight(sweep: Sweep, out: Path) -> dict[str, str]:
    """Check every point as `fgrpo run` will (data, partitions, model, reward functions) and what
    to do with it; the first problem stops the sweep before any point runs. Returns the actions."""

    check_out(out)
    for point in sweep.points:
        try:
            check_run(point.config, out / point.name)
        except UserInputError as err:
            raise about_point(point.name, err) from err
    compact = compact_records(out)
    return {p.name: action(p, out, compact) for p in sweep.points}


def plan_text(sweep: Sweep, actions: dict[str, str]) -> str:
    """What `fgrpo sweep --dry-run` prints: one line per point."""
    counts = {
        a: sum(1 for v in actions.values() if v == a) for a in ("done", "resume", "rerun", "new")
    }
    head = (
        f"sweep {sweep.path}"
        + (f" (slice {sweep.slice})" if sweep.slice else "")
        + f": {len(sweep.points)} points, "
    )
    head += ", ".join(f"{n} {a}" for a, n in counts.items() if n)
    rows = [head]
    rows += [f"  {actions[p.name]:6s} {p.name}  [{plan_line(p.config)}]" for p in sweep.points]
    return "\n".join(rows)


class Manifest:
    """DIR/sweep.json, rewritten atomically after every change."""

    def __init__(self, out: Path, sweep: Sweep, command: list[str] | None) -> None:
        self.path = out / MANIFEST
        old = json.loads(self.path.read_text()) if self.path.is_file() else {}
        before = {p["name"]: p for p in old.get("points", [])}
        self.doc: dict[str, Any] = {
            "sweep": str(sweep.path),
            "slice": sweep.slice,
            "description": sweep.description,
            "command": command,
            "machine": {
                "platform": platform.platform(),
                "cpus": os.cpu_count(),
                "gpu": shutil.which("nvidia-smi") is not None,
            },
            "started": old.get("started", _now()),
            "effects": sweep.effects,  # what `fgrpo report` computes (fgrpo.analysis.effects)
            "points": [
                {
                    "name": p.name,
                    "values": p.values,
                    "status": "pending",
                    "seconds": None,
                    "error": None,
                    **{
                        k: before[p.name][k]
                        for k in ("status", "seconds", "error")
                        if p.name in before
                    },
                }
                for p in sweep.points
            ],
        }
        self.by_name = {p["name"]: p for p in self.doc["points"]}

    def update(self, name: str, **fields: Any) -> None:
        self.by_name[name].update(fields)
        self.doc["updated"] = _now()
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.doc, indent=2) + "\n")
        tmp.replace(self.path)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _eta(seconds: list[float], remaining: int) -> str:
    if not seconds or not remaining:
        return ""
    left = sum(seconds) / len(seconds) * remaining
    return (
        f" | ~{left / 60:.0f} min left for {remaining} point{'s' if remaining > 1 else ''}"
        if left >= 60
        else f" | ~{left:.0f}s left"
    )


def run_point(point: Point, out: Path, what: str, runner: Runner) -> Outcome:
    run, config_file = out / point.name, out / "configs" / f"{point.name}.toml"
    log = out / "logs" / f"{point.name}.log"
    config_file.parent.mkdir(exist_ok=True)
    log.parent.mkdir(exist_ok=True)
    config = {**point.config.to_dict(), "output": {"dir": str(run)}}
    config_file.write_text(tomli_w.dumps({**config, "tracking": tracked(point.config, out)}))
    fresh = ["run", "--config", str(config_file), "--out", str(run)] + (
        ["--overwrite"] if what == "rerun" else []
    )
    outcome = runner(["run", "--resume", str(run)] if what == "resume" else fresh, log)
    if what == "resume" and outcome.returncode == 2:  # the resume was refused: start the point over
        outcome = runner(fresh + ["--overwrite"], log)
    if run.is_dir():
        (run / "resources.json").write_text(
            json.dumps({**outcome.resources, "attempt": what}, indent=2) + "\n"
        )
    return outcome


def tracked(cfg: Config, out: Path) -> dict[str, Any]:
    """A point's tracking table: grouped under the sweep (its directory's name: the MLflow
    experiment, the W&B group) in one MLflow store in the sweep directory, unless the sweep's
    config says otherwise."""
    tracking = cfg.to_dict()["tracking"]
    return {
        **tracking,
        "group": tracking["group"] or out.name,
        "mlflow_uri": tracking["mlflow_uri"] or str(out / "mlflow"),
    }


def uses_ray(point: Point) -> bool:
    return strategy_entry(point.config.strategy.name).in_flower  # Flower's simulation runs on Ray


@contextmanager
def point_runners(
    sweep: Sweep, out: Path, actions: dict[str, str], echo: Callable[[str], None]
) -> Iterator[Callable[[Point], Runner]]:
    """Each point's runner: its own `fgrpo run` process, joining one Ray cluster started for the
    sweep's federated points (fgrpo.runtime.ray_cluster) unless RAY_ADDRESS names one
    already."""
    if not any(actions[p.name] != "done" and uses_ray(p) for p in sweep.points) or os.environ.get(
        ADDRESS_ENV
    ):
        yield lambda point: fgrpo_subprocess
        return
    with ExitStack() as stack:
        try:
            cluster = stack.enter_context(SharedCluster(out / "logs" / "ray-cluster.log"))
        except RuntimeError as err:  # each point then starts its own, as `fgrpo run` does alone
            echo(f"sweep: {err}; each point starts its own")
            yield lambda point: fgrpo_subprocess
            return

        def runner(point: Point) -> Runner:
            if uses_ray(point) and not cluster.alive:
                echo(
                    f"sweep: the shared Ray cluster stopped (see {cluster.log}); {point.name} starts its own"
                )
            return partial(
                fgrpo_subprocess, cluster=cluster if uses_ray(point) and cluster.alive else None
            )

        yield runner


def run_sweep(
    sweep: Sweep,
    out: Path,
    runner: Runner | None = None,
    echo: Callable[[str], None] = print,
    command: list[str] | None = None,
) -> int:
    """Run every point not done yet (``runner``: the same one for every point, instead of an
    `fgrpo run` process each); 0 when all are done, 1 when any failed. ``command``: for the
    manifest."""
    actions = preflight(sweep, out)
    out.mkdir(parents=True, exist_ok=True)
    if runner is not None:
        return _run_points(sweep, out, actions, lambda point: runner, echo, command)
    with point_runners(sweep, out, actions, echo) as runners:
        return _run_points(sweep, out, actions, runners, echo, command)


def _run_points(
    sweep: Sweep,
    out: Path,
    actions: dict[str, str],
    runners: Callable[[Point], Runner],
    echo: Callable[[str], None],
    command: list[str] | None,
) -> int:
    manifest = Manifest(out, sweep, command)
    total, finished = len(sweep.points), sum(1 for a in actions.values() if a == "done")
    echo(plan_text(sweep, actions).splitlines()[0])
    spent: list[float] = []
    failed = 0
    for point in sweep.points:
        what = actions[point.name]
        if what == "done":
            manifest.update(point.name, status="done")
            continue
        echo(f"[{finished + 1}/{total}] {what}: {point.name}")
        manifest.update(point.name, status="running", error=None)
        start = time.monotonic()
        try:
            outcome = run_point(point, out, what, runners(point))
        except KeyboardInterrupt:
            manifest.update(point.name, status="interrupted")
            echo(f"sweep: interrupted during {point.name}; run the same command again to resume")
            return 130
        seconds = round(time.monotonic() - start, 1)
        spent.append(seconds)
        finished += 1
        ok = outcome.returncode == 0
        failed += not ok
        manifest.update(
            point.name, status="done" if ok else "failed", seconds=seconds, error=outcome.error
        )
        verdict = "done" if ok else f"FAILED ({outcome.error})"
        echo(
            f"[{finished}/{total}] {verdict}: {point.name} in {seconds:.0f}s{_eta(spent, total - finished)}"
        )
    echo(
        f"sweep: {total - failed} of {total} points done"
        + (f", {failed} failed (see {out / MANIFEST})" if failed else "")
        + f"; report: fgrpo report {out}"
    )
    return 1 if failed else 0
