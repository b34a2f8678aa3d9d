"""tracking.backends in whole runs: a 2-round run, its resume to a third round (the same tracked
runs, no round twice) and a 2-point sweep (one MLflow experiment, one W&B group), read back with
TensorBoard's, MLflow's and W&B's own readers."""

from __future__ import annotations

import json

from fgrpo.runtime.configs import load_config
from fgrpo.runtime.grid import read_sweep
from fgrpo.runtime.runner import run_experiment
from fgrpo.runtime.sweep import run_sweep
from fgrpo.runtime.tracking import STATE_FILE

from ..run_checks import SMALL, check_run_dir
from ..sweep_helpers import TINY
from ..tracking_readers import (
    mlflow_client,
    mlflow_steps,
    tb_steps,
    tensorboard,
    wandb_runs,
    wandb_steps,
)

BACKENDS = 'tracking.backends=["tensorboard", "mlflow", "wandb"]'


def test_a_run_and_its_resume_are_one_tracked_run_in_each_backend(tmp_path):
    overrides = [*SMALL, "federation.num_clients=2", BACKENDS, "tracking.client_steps=true"]
    run_experiment(load_config(None, [*overrides, "federation.rounds=2"]), tmp_path)
    first = json.loads((tmp_path / STATE_FILE).read_text())
    run_experiment(load_config(None, [*overrides, "federation.rounds=3"]), tmp_path, resume=True)
    records = check_run_dir(tmp_path, rounds=3, clients=2)
    assert json.loads((tmp_path / STATE_FILE).read_text()) == {**first, "last_round": 3}
    steps = [2 * r + i for r in range(3) for i in (1, 2)]  # 2 local steps a round
    cid = records[0]["clients"][0]["client-id"]
    assert len(records[2]["client-steps"][cid]["reward"]) == 2

    events = tensorboard(tmp_path / "tensorboard")
    assert tb_steps(events, "eval/macro") == [0, 1, 2, 3]
    assert tb_steps(events, f"client/{cid}/weight") == [1, 2, 3]
    local = tensorboard(tmp_path / "tensorboard" / "client-steps")
    assert tb_steps(local, f"client-steps/{cid}/reward") == steps
    assert {"plots/accuracy", "plots/reward"} <= set(events.Tags()["images"])

    client = mlflow_client(tmp_path / "mlflow")
    (run,) = client.search_runs([client.get_experiment_by_name("fgrpo").experiment_id])
    assert run.info.run_id == first["mlflow"]["run_id"] and run.info.status == "FINISHED"
    assert run.data.params["federation.rounds"] == "2"  # the parameters of the run as started
    assert mlflow_steps(client, run.info.run_id, "eval/macro") == [0, 1, 2, 3]
    assert mlflow_steps(client, run.info.run_id, "reward/normalised") == [1, 2, 3]
    assert mlflow_steps(client, run.info.run_id, f"client-steps/{cid}/loss") == steps
    adapter = {a.path for a in client.list_artifacts(run.info.run_id, "adapter")}
    assert "adapter/adapter_model.safetensors" in adapter

    (wandb,) = wandb_runs(tmp_path).values()  # one W&B run, written by two sessions
    assert wandb["files"] == 2 and wandb["config"]["strategy.name"] == "fgrpo"
    assert wandb_steps(wandb["history"], "eval/macro") == [0, 1, 2, 3]
    assert wandb_steps(wandb["history"], f"client-steps/{cid}/reward", "local_step") == steps


def test_a_sweeps_points_are_runs_grouped_under_the_sweep(tmp_path):
    """centralized points: each a real `fgrpo run` process, without a Ray cluster."""
    path = tmp_path / "sweep.toml"
    tracking = '[base.tracking]\nbackends = ["tensorboard", "mlflow", "wandb"]\n'
    grid = '[grid]\n"strategy.name" = ["centralized"]\n"grpo.learning_rate" = [0.001, 0.002]\n'
    path.write_text(TINY.replace("rounds = 1", "rounds = 2") + tracking + grid)
    out = tmp_path / "lr-sweep"
    assert run_sweep(read_sweep(path), out, echo=lambda _: None) == 0
    points = [p.name for p in read_sweep(path).points]

    client = mlflow_client(out / "mlflow")
    runs = client.search_runs([client.get_experiment_by_name("lr-sweep").experiment_id])
    assert sorted(r.info.run_name for r in runs) == sorted(points)
    assert sorted(r.data.params["grpo.learning_rate"] for r in runs) == ["0.001", "0.002"]
    assert all(r.data.tags["fgrpo.group"] == "lr-sweep" for r in runs)
    for run in runs:
        assert mlflow_steps(client, run.info.run_id, "eval/macro") == [0, 1, 2]
        adapter = {a.path for a in client.list_artifacts(run.info.run_id, "adapter")}
        assert "adapter/adapter_model.safetensors" in adapter
    for point in points:
        events = tensorboard(out / point / "tensorboard")
        assert tb_steps(events, "eval/macro") == [0, 1, 2]
        config = events.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
        assert f"| grpo.learning_rate | {point.split('=')[-1]} |" in config
        (wandb,) = wandb_runs(out / point).values()
        assert wandb["group"] == "lr-sweep" and wandb["project"] == "lr-sweep"
        assert wandb["config"]["tracking.group"] == "lr-sweep"
        assert wandb_steps(wandb["history"], "eval/macro") == [0, 1, 2]
    assert run_sweep(read_sweep(path), out, echo=lambda _: None) == 0  # done: the same config
