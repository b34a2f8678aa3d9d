"""The simulation runner starts a Ray cluster of the run's own unless RAY_ADDRESS names one: Ray's
default address would join any cluster on the machine (another sweep's, a leaked one), and a run
that joined it by accident shares its workers and outlives no kill cleanly."""

import pytest

from fgrpo.runtime import runner
from fgrpo.runtime.configs import load_config


def captured_backend(monkeypatch, tmp_path) -> dict:
    seen = {}

    def simulate(**kwargs):
        seen.update(kwargs["backend_config"])

    monkeypatch.setattr("fgrpo.runtime.flower_simulation.simulate", simulate)
    with pytest.raises(RuntimeError, match="without writing"):
        runner.run_experiment(load_config(None, ["federation.num_clients=2"]), tmp_path)
    return seen


def test_without_ray_address_the_run_starts_its_own_cluster(monkeypatch, tmp_path):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert captured_backend(monkeypatch, tmp_path)["init_args"]["address"] == "local"


def test_with_ray_address_the_run_joins_that_cluster(monkeypatch, tmp_path):
    joined = []
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    monkeypatch.setattr(runner, "join", lambda init_args: joined.append(init_args) or True)
    backend = captured_backend(monkeypatch, tmp_path)
    assert joined and "address" not in backend["init_args"]
