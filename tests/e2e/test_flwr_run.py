"""`flwr run .` as the README documents it: Flower's CLI starts a local SuperLink in simulation mode
on the project's federation config (configs/flwr_federation.toml), and `fgrpo flwr-stop` ends it.
Flower's home and the SuperLink's port are the test's own, never the user's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from fgrpo.runtime.flower_local import local_superlinks, stop_local_superlinks

from ..deployment import BIN, ROOT, free_port, processes_of_flwr_home


def _fake_superlink(folder: Path, home: Path) -> subprocess.Popen:
    """A process that looks like the SuperLink `flwr run` starts for ``home`` (it only sleeps)."""
    script = folder / "flower-superlink"
    script.write_text(f"#!{sys.executable}\nimport time\ntime.sleep(600)\n")
    script.chmod(0o755)
    log_file = home / "local-superlink" / "superlink.log"
    return subprocess.Popen(
        [str(script), "--insecure", "--simulation", "--log-file", str(log_file)]
    )


def test_flwr_stop_ends_only_the_superlink_of_this_flower_home(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "other").mkdir()
    mine = _fake_superlink(tmp_path / "mine", tmp_path / "home")
    other = _fake_superlink(tmp_path / "other", tmp_path / "another-home")
    try:
        assert [p.pid for p in local_superlinks(tmp_path / "home")] == [mine.pid]
        assert stop_local_superlinks(tmp_path / "home") == [mine.pid]
        assert mine.wait(timeout=10) is not None
        assert other.poll() is None  # another Flower home's SuperLink is left alone
        assert stop_local_superlinks(tmp_path / "home") == []
    finally:
        for proc in (mine, other):
            proc.kill()
            proc.wait(timeout=10)


@pytest.mark.slow
def test_flwr_run_simulates_a_round_on_the_projects_federation_and_the_superlink_is_stopped(
    tmp_path,
):
    home, out = tmp_path / "flwr-home", tmp_path / "run"
    port = free_port()
    env = {
        **os.environ,
        "FLWR_HOME": str(home),
        "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
        "FLWR_DISABLE_UPDATE_CHECK": "1",
        "FLWR_LOCAL_SUPERLINK_HTTP_API_PORT": str(port),
        "FLWR_LOCAL_CONTROL_API_PORT": str(free_port()),
        "PYTHONPATH": str(ROOT / "src"),
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    run_config = {
        "federation.rounds": 1,
        "federation.local_steps": 1,
        "model.name": "tiny-random",
        "data.train_size": 64,
        "data.test_size": 10,
        "grpo.per_device_train_batch_size": 8,
        "data.reward_scale.sorting": 2.0,
        "output.dir": str(out),
    }  # a table entry, as the README shows
    overrides = tmp_path / "run_config.toml"
    overrides.write_text(
        "".join(f"{json.dumps(k)} = {json.dumps(v)}\n" for k, v in run_config.items())
    )
    try:
        proc = subprocess.run(
            [
                str(BIN / "flwr"),
                "run",
                str(ROOT),
                "--federation-config",
                str(ROOT / "configs" / "flwr_federation.toml"),
                "--run-config",
                str(overrides),
                "--stream",
            ],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        stop = subprocess.run(
            [sys.executable, "-m", "fgrpo", "flwr-stop"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rounds_aggregated"] == 1
    (line,) = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert (
        len(line["clients"]) == 4
    )  # configs/flwr_federation.toml's 4 SuperNodes, fgrpo's 4 clients
    assert tomllib.loads((out / "config.toml").read_text())["data"]["reward_scale"] == {
        "sorting": 2.0
    }
    assert stop.returncode == 0 and "stopped the local SuperLink" in stop.stdout, (
        stop.stdout + stop.stderr
    )
    assert not processes_of_flwr_home(str(home))


def test_the_fab_flwr_run_packs_is_the_app_with_a_manifest_flower_can_read():
    """`flwr run .` ships the project as a FAB whose manifest has one "path,sha256,bits" line per
    file; a committed sweep directory (names with commas) inside it made the ServerApp fail at
    install."""
    import io
    import zipfile

    from flwr.cli.build import build_fab_from_disk

    fab = zipfile.ZipFile(io.BytesIO(build_fab_from_disk(ROOT)))
    manifest = fab.read(".info/CONTENT").decode().splitlines()
    paths = [line.split(",")[0] for line in manifest]
    assert all(len(line.split(",")) == 3 for line in manifest)  # how Flower's install parses it
    assert {
        "src/fgrpo/runtime/server_app.py",
        "src/fgrpo/client/app.py",
        "configs/demo.toml",
    } <= set(paths)
    assert not [p for p in paths if p.startswith(("benchmarks/", "tests/", "runs/"))]
