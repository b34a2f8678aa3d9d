"""One Ray cluster for a sweep's points: its life, a run joining it, and which points use it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from contextlib import contextmanager
from pathlib import Path

import psutil

from fgrpo.runtime import sweep as sweep_module
from fgrpo.runtime.grid import read_sweep
from fgrpo.runtime.monitor import TreeMonitor
from fgrpo.runtime.ray_cluster import ADDRESS_ENV, SharedCluster

from ..sweep_helpers import TINY

# A run's process as far as Ray goes: join (with the run's worker environment), then what a
# Flower Ray worker would see.
JOINING_RUN = textwrap.dedent("""\
    import os, ray
    from fgrpo.runtime.ray_cluster import join
    assert join({"logging_level": "ERROR", "log_to_driver": False})
    @ray.remote(num_cpus=1)
    def seen():
        return os.environ.get("FGRPO_RUN_LOG"), os.getppid()
    print(ray.get_runtime_context().gcs_address, *ray.get(seen.remote()))
    ray.shutdown()
    """)


def printed(script: str, env: dict[str, str], timeout: int) -> list[str]:
    """The words ``script`` prints, run in a Python process of its own with ``env`` and this
    checkout's sources."""
    done = subprocess.run(
        [sys.executable, "-c", script],
        env={**env, "PYTHONPATH": str(Path(__file__).parents[2] / "src")},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.split()


def test_a_run_joins_the_sweep_cluster_with_its_worker_environment(tmp_path, monkeypatch):
    monkeypatch.delenv(ADDRESS_ENV)  # the test session's own cluster (tests/conftest.py)
    with SharedCluster(tmp_path / "ray.log") as cluster:
        env = {**cluster.env, "FGRPO_RUN_LOG": str(tmp_path / "run.log")}
        for _ in range(2):  # a second run joins the same, still running cluster
            address, run_log, worker_parent = printed(JOINING_RUN, env, timeout=120)
            assert address == cluster.address and run_log == str(tmp_path / "run.log")
            # the worker belongs to the cluster's processes, which the sweep's monitor adds to the
            # run's
            nodes = [psutil.Process(pid) for pid in cluster.node_pids()]
            assert (
                cluster.proc.pid not in cluster.node_pids()
            )  # the holder's own driver is not counted
            assert worker_parent in {
                str(p.pid) for n in nodes for p in [n, *n.children(recursive=True)]
            }
        holder = psutil.Process(cluster.proc.pid)
    assert not holder.is_running() or holder.status() == psutil.STATUS_ZOMBIE
    assert ADDRESS_ENV not in os.environ  # the sweep's own environment is left as it was


# Two runs in one process, the first leaving its connection open (as a run that raised does):
# with RAY_ADDRESS the second joins with its own worker environment; without, Flower finds no
# connection to reuse (it would keep the first run's) and starts the run's own cluster.
TWO_RUNS_ONE_PROCESS = textwrap.dedent("""\
    import os, ray
    from fgrpo.runtime.runner import connect_ray
    @ray.remote(num_cpus=1)
    def seen():
        return os.environ.get("FGRPO_RUN_LOG")
    for log in ("first.log", "second.log"):
        os.environ["FGRPO_RUN_LOG"] = log
        init_args = {"logging_level": "ERROR", "log_to_driver": False}
        connect_ray(init_args)
        if not ray.is_initialized():  # the run's own cluster, as Flower starts it
            print("closed")
            ray.init(num_cpus=1, **init_args)
        print(ray.get(seen.remote()))
    ray.shutdown()
    """)


def test_a_run_joins_again_where_an_earlier_run_left_ray_connected():
    # the test session's cluster (tests/conftest.py); the second run's own environment
    assert printed(TWO_RUNS_ONE_PROCESS, dict(os.environ), timeout=180) == [
        "first.log",
        "second.log",
    ]


def test_a_run_starts_its_own_cluster_where_an_earlier_run_left_ray_connected():
    env = {k: v for k, v in os.environ.items() if k != ADDRESS_ENV}
    assert printed(TWO_RUNS_ONE_PROCESS, env, timeout=180) == [
        "closed",
        "first.log",
        "closed",
        "second.log",
    ]


def test_without_ray_address_a_run_starts_its_own(monkeypatch):
    from fgrpo.runtime.ray_cluster import join

    monkeypatch.delenv(ADDRESS_ENV)

    assert join({"logging_level": "ERROR"}) is False  # and Ray is left to Flower


def test_the_monitor_adds_the_cluster_tree(tmp_path):
    code = "import time; x = bytearray(120 * 2**20); time.sleep(1.5)"
    run, other = (subprocess.Popen([sys.executable, "-c", code]) for _ in range(2))
    with TreeMonitor(run.pid, interval=0.2, also=(other.pid,)) as monitor:
        run.wait()
        other.wait()
    assert monitor.record()["peak_rss_mb"] > 230


GRID = TINY + '[grid]\n"strategy.name" = {strategies}\n'  # the sweep tests' tiny points


class FakeCluster:
    started = 0
    fail = False

    def __init__(self, log: Path) -> None:
        self.log = log
        self.alive = True

    def __enter__(self) -> FakeCluster:
        if FakeCluster.fail:
            raise RuntimeError(f"could not start a Ray cluster for the sweep; see {self.log}")
        FakeCluster.started += 1
        FakeCluster.last = self
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def runners_for(tmp_path, monkeypatch, strategies, done=(), address=None, fail=False):
    path = tmp_path / "sweep.toml"
    path.write_text(GRID.format(strategies=strategies))
    sweep = read_sweep(path)
    monkeypatch.setattr(sweep_module, "SharedCluster", FakeCluster)
    if address:
        monkeypatch.setenv(ADDRESS_ENV, address)
    else:
        monkeypatch.delenv(ADDRESS_ENV, raising=False)
    FakeCluster.started, FakeCluster.fail = 0, fail
    actions = {p.name: "done" if p.name in done else "new" for p in sweep.points}

    @contextmanager
    def opened():
        with sweep_module.point_runners(sweep, tmp_path / "out", actions, echo=print) as runners:
            yield {p.config.strategy.name: runners(p) for p in sweep.points}

    return opened()


def test_federated_points_share_one_cluster_centralized_ones_do_not(tmp_path, monkeypatch):
    with runners_for(tmp_path, monkeypatch, '["fedavg", "centralized", "fgrpo"]') as by_strategy:
        assert FakeCluster.started == 1
        fedavg, fgrpo = by_strategy["fedavg"], by_strategy["fgrpo"]
        assert (
            isinstance(fedavg.keywords["cluster"], FakeCluster)
            and fgrpo.keywords["cluster"] is fedavg.keywords["cluster"]
        )
        assert by_strategy["centralized"].keywords["cluster"] is None


def test_no_cluster_when_none_is_needed_or_one_is_given(tmp_path, monkeypatch):
    with runners_for(tmp_path, monkeypatch, '["centralized"]') as by_strategy:
        assert (
            FakeCluster.started == 0 and by_strategy["centralized"] is sweep_module.fgrpo_subprocess
        )
    with runners_for(tmp_path, monkeypatch, '["fedavg"]', done={"strategy.name=fedavg"}):
        assert FakeCluster.started == 0
    with runners_for(tmp_path, monkeypatch, '["fedavg"]', address="10.0.0.1:6379") as by_strategy:
        assert FakeCluster.started == 0 and by_strategy["fedavg"] is sweep_module.fgrpo_subprocess


def test_a_cluster_that_will_not_start_leaves_each_point_its_own(tmp_path, monkeypatch, capsys):
    with runners_for(tmp_path, monkeypatch, '["fedavg"]', fail=True) as by_strategy:
        assert by_strategy["fedavg"] is sweep_module.fgrpo_subprocess
    assert "could not start a Ray cluster for the sweep" in capsys.readouterr().out


def test_points_after_the_cluster_stopped_start_their_own(tmp_path, monkeypatch, capsys):
    with runners_for(tmp_path, monkeypatch, '["fedavg", "fgrpo"]') as by_strategy:
        cluster = by_strategy["fedavg"].keywords["cluster"]
    path = tmp_path / "sweep.toml"
    with sweep_module.point_runners(
        read_sweep(path),
        tmp_path / "out",
        {"strategy.name=fedavg": "new", "strategy.name=fgrpo": "new"},
        echo=print,
    ) as runners:
        point = read_sweep(path).points[1]
        FakeCluster.last.alive = False
        assert runners(point).keywords["cluster"] is None
    assert cluster is not None and "the shared Ray cluster stopped" in capsys.readouterr().out


def test_a_worker_on_another_machine_keeps_its_output(monkeypatch, tmp_path):
    from fgrpo.client import progress

    monkeypatch.setenv(progress.RUN_LOG_ENV, str(tmp_path / "not-here" / "run.log"))
    called = []
    monkeypatch.setattr(progress, "point_output_at", called.append)
    progress.route_output_to_run_log()  # the run's directory is on the machine that started the run
    assert called == []
    monkeypatch.setenv(progress.RUN_LOG_ENV, str(tmp_path / "run.log"))
    progress.route_output_to_run_log()
    assert called == [str(tmp_path / "run.log")]
