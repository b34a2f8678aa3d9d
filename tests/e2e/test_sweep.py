"""`fgrpo sweep`: grid expansion and validation, and resuming a sweep (fake runner; one real smoke
sweep)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fgrpo.cli.main import main
from fgrpo.core.errors import ConfigError
from fgrpo.runtime.grid import read_sweep
from fgrpo.runtime.sweep import Outcome, _eta, run_sweep
from fgrpo.runtime.sweep_runs import run_records, write_compact

from ..sweep_helpers import TINY


def write_sweep(tmp_path: Path, grid: str, extra: str = "") -> Path:
    path = tmp_path / "sweep.toml"
    path.write_text(TINY + extra + "[grid]\n" + textwrap.dedent(grid))
    return path


def test_grid_is_the_product_with_readable_names(tmp_path):
    path = write_sweep(
        tmp_path,
        """\
        "strategy.name" = ["fgrpo", "fedavg"]
        data = [{alpha = 0.1}, {partition = "iid"}]
        seed = [0, 1]
        """,
        extra='[set]\n"federation.rounds" = 3\n',
    )
    sweep = read_sweep(path)
    names = [p.name for p in sweep.points]
    assert len(names) == 8 == len(set(names))
    assert names[0] == "strategy.name=fgrpo,data.alpha=0.1,seed=0"
    assert names[-1] == "strategy.name=fedavg,data.partition=iid,seed=1"
    assert all(
        name.endswith("seed=0") for name in names[:4]
    )  # seeds outermost: every combination at seed 0 first
    by_name = {p.name: p.config for p in sweep.points}
    iid = by_name["strategy.name=fedavg,data.partition=iid,seed=1"]
    assert (iid.strategy.name, iid.data.partition, iid.seed) == ("fedavg", "iid", 1)
    low = by_name["strategy.name=fgrpo,data.alpha=0.1,seed=0"]
    assert (low.data.alpha, low.data.partition, low.model.name) == (0.1, "dirichlet", "tiny-random")
    assert all(c.federation.rounds == 3 for c in by_name.values())  # [set] reaches every point


def test_base_file_and_slices(tmp_path):
    (tmp_path / "base.toml").write_text(
        '[federation]\nnum_clients = 3\n[model]\nname = "tiny-random"\n'
    )
    path = tmp_path / "s.toml"
    path.write_text(
        textwrap.dedent("""\
        base = "base.toml"
        [grid]
        seed = [0, 1]
        [slices.alpha]
        grid = {"data.alpha" = [0.1, 1.0]}
        [slices.clients]
        set = {"data.alpha" = 0.3}
        grid = {"federation.num_clients" = [4, 8]}
        """)
    )
    with pytest.raises(ConfigError, match="defines slices alpha, clients; choose one with --slice"):
        read_sweep(path)
    with pytest.raises(ConfigError, match="no slice 'nope'"):
        read_sweep(path, "nope")
    alpha = read_sweep(path, "alpha")
    assert [p.name for p in alpha.points] == [
        "data.alpha=0.1,seed=0",
        "data.alpha=1.0,seed=0",
        "data.alpha=0.1,seed=1",
        "data.alpha=1.0,seed=1",
    ]
    assert all(p.config.federation.num_clients == 3 for p in alpha.points)  # from the base file
    clients = read_sweep(path, "clients")
    assert {(p.config.federation.num_clients, p.config.data.alpha) for p in clients.points} == {
        (4, 0.3),
        (8, 0.3),
    }


def test_a_bad_value_names_the_point_and_key_before_anything_runs(tmp_path, capsys):
    path = write_sweep(tmp_path, '"strategy.name" = ["fgrpo"]\n"data.alpha" = [0.5, -1]\n')
    with pytest.raises(ConfigError) as err:
        read_sweep(path)
    assert str(err.value).startswith(
        "point strategy.name=fgrpo,data.alpha=-1: data.alpha: must be >="
    )
    out = tmp_path / "out"
    assert main(["sweep", "--config", str(path), "--out", str(out)]) == 2
    stderr = capsys.readouterr().err.strip()
    assert (
        stderr.count("\n") == 0 and "point strategy.name=fgrpo,data.alpha=-1: data.alpha" in stderr
    )
    assert not out.exists()
    bad_key = write_sweep(tmp_path, '"federation.roundz" = [1, 2]\n')
    assert main(["sweep", "--config", str(bad_key), "--out", str(out)]) == 2
    assert "point federation.roundz=1: federation.roundz: unknown key" in capsys.readouterr().err
    # valid config, but `fgrpo run`'s pre-flight would refuse it (64 prompts over 40 clients):
    # caught up front too
    too_many = write_sweep(
        tmp_path, '"federation.num_clients" = [2, 40]\n', extra='[set]\n"data.partition" = "iid"\n'
    )
    assert main(["sweep", "--config", str(too_many), "--out", str(out), "--dry-run"]) == 2
    assert re.search(
        r"point federation.num_clients=40: data.train_size: client \d+ gets 1 prompts",
        capsys.readouterr().err,
    )
    assert not out.exists()


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path, capsys):
    path = write_sweep(tmp_path, '"strategy.name" = ["fgrpo", "fedavg"]\n')
    out = tmp_path / "out"
    assert main(["sweep", "--config", str(path), "--out", str(out), "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "2 points, 2 new" in text
    assert (
        "new    strategy.name=fedavg  [fedavg (grpo), model tiny-random, 2 clients, 1 rounds x 1 local steps"
        in text
    )
    assert not out.exists()


def test_run_dry_run_checks_and_prints_the_plan(tmp_path, capsys):
    out = tmp_path / "run"
    args = [
        "run",
        "--set",
        "model.name=tiny-random",
        "--set",
        "federation.num_clients=2",
        "--set",
        "data.train_size=64",
        "--set",
        "grpo.per_device_train_batch_size=8",
        "--out",
        str(out),
        "--dry-run",
    ]
    assert main(args) == 0
    assert (
        "fgrpo (grpo), model tiny-random, 2 clients, 3 rounds x 2 local steps (12 client-steps of 8 completions)"
        in capsys.readouterr().out
    )
    assert not out.exists()
    assert (
        main([*args, "--set", "federation.num_clients=40", "--set", "data.partition=iid"]) == 2
    )  # pre-flight refuses
    assert "data.train_size: client" in capsys.readouterr().err


class FakeRunner:
    """Stands in for `python -m fgrpo run`: writes a run directory's files, or fails as told."""

    def __init__(self, fail: set[str] = frozenset(), crash: set[str] = frozenset()) -> None:
        self.calls: list[list[str]] = []
        self.fail, self.crash = set(fail), set(crash)

    def __call__(self, args: list[str], log: Path) -> Outcome:
        self.calls.append(args)
        if "--resume" in args:
            run = Path(args[args.index("--resume") + 1])
        else:
            run = Path(args[args.index("--out") + 1])
            if run.is_dir() and any(run.iterdir()):
                assert "--overwrite" in args  # `fgrpo run` would refuse otherwise
                shutil.rmtree(run)
            run.mkdir(parents=True)
            shutil.copy(args[args.index("--config") + 1], run / "config.toml")
            (run / "metrics.jsonl").write_text("")
        if run.name in self.fail:
            return Outcome(1, "fgrpo: boom", {"wall_seconds": 0.1})
        if run.name in self.crash:  # killed after its round-1 checkpoint
            (run / "checkpoint").mkdir()
            (run / "checkpoint" / "state.json").write_text(json.dumps({"round": 1}))
            return Outcome(-9, "killed", {})
        (run / "summary.json").write_text(json.dumps({"strategy": "x", "final_eval": None}))
        return Outcome(0, None, {"wall_seconds": 0.1, "peak_rss_mb": 10.0})


def test_resume_skips_finished_points_retries_failed_and_resumes_crashed(tmp_path):
    path = write_sweep(tmp_path, '"strategy.name" = ["fgrpo", "fedavg", "fedprox"]\n')
    out = tmp_path / "out"
    names = [p.name for p in read_sweep(path).points]
    first = FakeRunner(fail={names[0]}, crash={names[1]})
    lines: list[str] = []
    assert run_sweep(read_sweep(path), out, runner=first, echo=lines.append) == 1
    assert len(first.calls) == 3  # the failure did not stop the sweep
    manifest = {p["name"]: p for p in json.loads((out / "sweep.json").read_text())["points"]}
    assert manifest[names[0]]["status"] == "failed" and manifest[names[0]]["error"] == "fgrpo: boom"
    assert manifest[names[1]]["status"] == "failed"
    assert manifest[names[2]]["status"] == "done" and manifest[names[2]]["seconds"] is not None
    assert json.loads((out / names[2] / "resources.json").read_text())["peak_rss_mb"] == 10.0
    started = json.loads((out / "sweep.json").read_text())["started"]
    assert json.loads((out / "sweep.json").read_text())["machine"]["cpus"] == os.cpu_count()
    assert lines[1].startswith("[1/3] new: ") and "left" in lines[2]
    assert lines[-1].startswith("sweep: 1 of 3 points done, 2 failed")

    second = FakeRunner()
    assert run_sweep(read_sweep(path), out, runner=second, echo=lines.append) == 0
    runs = {
        Path(a[a.index("--resume") + 1] if "--resume" in a else a[a.index("--out") + 1]).name: a
        for a in second.calls
    }
    assert set(runs) == {names[0], names[1]}  # the finished point was skipped
    assert "--overwrite" in runs[names[0]]  # failed before any checkpoint: started over
    assert runs[names[1]][:2] == ["run", "--resume"]  # crashed after a checkpoint: continued
    manifest = json.loads((out / "sweep.json").read_text())
    assert all(p["status"] == "done" for p in manifest["points"])
    assert (
        manifest["started"] == started and manifest["updated"] >= started
    )  # the first session's start stays


def test_ctrl_c_marks_the_point_interrupted(tmp_path):
    path = write_sweep(tmp_path, '"strategy.name" = ["fgrpo", "fedavg"]\n')

    def interrupted(args: list[str], log: Path) -> Outcome:
        raise KeyboardInterrupt

    lines: list[str] = []
    assert (
        run_sweep(read_sweep(path), tmp_path / "out", runner=interrupted, echo=lines.append) == 130
    )
    statuses = [
        p["status"] for p in json.loads((tmp_path / "out" / "sweep.json").read_text())["points"]
    ]
    assert statuses == ["interrupted", "pending"] and "run the same command again" in lines[-1]


def test_a_changed_config_is_refused_not_overwritten(tmp_path):
    path = write_sweep(tmp_path, '"strategy.name" = ["fgrpo"]\n')
    out = tmp_path / "out"
    assert run_sweep(read_sweep(path), out, runner=FakeRunner(), echo=lambda _: None) == 0
    path.write_text(path.read_text().replace("rounds = 1", "rounds = 2"))
    with pytest.raises(
        ConfigError, match="point strategy.name=fgrpo: .*differs from the sweep's config"
    ):
        run_sweep(read_sweep(path), out, runner=FakeRunner(), echo=lambda _: None)
    assert (out / "strategy.name=fgrpo" / "summary.json").is_file()


def test_a_committed_sweep_grows_without_rerunning_its_compact_points(tmp_path):
    path = write_sweep(tmp_path, '"strategy.name" = ["fgrpo", "fedavg"]\n')
    out = tmp_path / "out"
    assert run_sweep(read_sweep(path), out, runner=FakeRunner(), echo=lambda _: None) == 0
    write_compact(out)  # committed as runs.jsonl, the run directories gone
    for point in read_sweep(path).points:
        shutil.rmtree(out / point.name)
    path.write_text(path.read_text().replace('"fedavg"]', '"fedavg", "fedprox"]'))
    grown = FakeRunner()
    assert run_sweep(read_sweep(path), out, runner=grown, echo=lambda _: None) == 0
    assert [Path(a[a.index("--out") + 1]).name for a in grown.calls] == ["strategy.name=fedprox"]
    assert [p["status"] for p in json.loads((out / "sweep.json").read_text())["points"]] == [
        "done"
    ] * 3
    assert set(run_records(out)) == {f"strategy.name={s}" for s in ("fgrpo", "fedavg", "fedprox")}

    path.write_text(path.read_text().replace("rounds = 1", "rounds = 2"))
    with pytest.raises(
        ConfigError, match="point strategy.name=fgrpo: its line in .*runs.jsonl differs"
    ):
        run_sweep(read_sweep(path), out, runner=FakeRunner(), echo=lambda _: None)


def test_a_non_sweep_directory_is_refused(tmp_path):
    path = write_sweep(tmp_path, '"strategy.name" = ["fgrpo"]\n')
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="holds no sweep.json"):
        run_sweep(read_sweep(path), tmp_path / "busy", runner=FakeRunner(), echo=lambda _: None)


@pytest.mark.slow
def test_real_smoke_sweep_of_two_points(tmp_path):
    """Two real `fgrpo run` subprocesses (tiny-random, 1 round, 1 step), then `fgrpo report`."""
    path = write_sweep(tmp_path, '"strategy.name" = ["fgrpo", "fedavg"]\n')
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    done = subprocess.run(
        [sys.executable, "-m", "fgrpo", "sweep", "--config", str(path), "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[2/2] done: strategy.name=fedavg" in done.stdout
    for name in ("strategy.name=fgrpo", "strategy.name=fedavg"):
        resources = json.loads((out / name / "resources.json").read_text())
        assert resources["samples"] >= 1 and resources["peak_rss_mb"] > 50
        assert (out / name / "summary.json").is_file()
    again = subprocess.run(
        [sys.executable, "-m", "fgrpo", "sweep", "--config", str(path), "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 0 and "2 done" in again.stdout and "[1/2]" not in again.stdout
    report = subprocess.run(
        [sys.executable, "-m", "fgrpo", "report", str(out)], env=env, capture_output=True, text=True
    )
    assert report.returncode == 0, report.stderr
    assert (out / "report" / "macro.png").is_file() and (
        out / "report" / "fgrpo_clients.png"
    ).is_file()


def test_committed_profiles_expand_and_validate():
    root = Path(__file__).parents[2] / "benchmarks"
    assert len(read_sweep(root / "quick.toml").points) == 4
    sizes = {
        name: len(read_sweep(root / "laptop.toml", name).points)
        for name in ("strategies", "references", "alpha", "clients", "rl")
    }
    assert sizes == {"strategies": 12, "references": 12, "alpha": 18, "clients": 12, "rl": 12}
    effects = {
        name: len(read_sweep(root / "effects.toml", name).points)
        for name in ("learn", "skewed", "scale", "fgrpo", "fgrpo-scale", "drift-fedprox")
    }
    assert effects == {
        "learn": 6,
        "skewed": 6,
        "scale": 6,
        "fgrpo": 6,
        "fgrpo-scale": 3,
        "drift-fedprox": 9,
    }
    assert "every-task-learns" in read_sweep(root / "effects.toml", "learn").effects


def test_monitor_records_the_process_tree(tmp_path):
    """A child holding ~200 MB under a shell: peak RSS counts the grandchild too."""
    from fgrpo.runtime.monitor import TreeMonitor

    code = "import time; x = bytearray(200 * 2**20); time.sleep(1.5)"
    proc = subprocess.Popen(["sh", "-c", f'"{sys.executable}" -c "{code}"; true'])
    with TreeMonitor(proc.pid, interval=0.2) as monitor:
        proc.wait()
    record = monitor.record()
    assert record["samples"] >= 3 and record["peak_rss_mb"] > 190 and record["wall_seconds"] >= 1.5
    assert record["cpu_percent_mean"] is not None
    assert ("gpu_util_percent_mean" in record) == (shutil.which("nvidia-smi") is not None)


def test_the_time_left_is_the_mean_point_time_the_points_left():
    assert _eta([120.0], 1) == " | ~2 min left for 1 point"
    assert _eta([120.0, 120.0], 3) == " | ~6 min left for 3 points"
    assert _eta([20.0], 2) == " | ~40s left"
    assert _eta([], 2) == _eta([60.0], 0) == ""
