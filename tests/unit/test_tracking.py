"""tracking.backends: what a run logs to TensorBoard, MLflow and W&B, read back with each tool's
own reader. The rounds are the committed demo run's real metrics.jsonl lines, fed to the tracker
as the run journal feeds it; whole runs and sweeps are in tests/e2e/test_tracking_runs.py."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import pytest

from fgrpo.runtime.configs import load_config
from fgrpo.runtime.run_dir import package_versions
from fgrpo.runtime.tracking import STATE_FILE, Tracker
from fgrpo.runtime.tracking.scalars import client_steps, round_scalars

from ..bad_input_helpers import fails, nothing_starts, sets  # noqa: F401 (the autouse safety net)
from ..tracking_readers import (
    mlflow_client,
    mlflow_steps,
    tb_steps,
    tensorboard,
    wandb_runs,
    wandb_steps,
)

DEMO = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "demo"
ROUNDS = [json.loads(line) for line in (DEMO / "metrics.jsonl").read_text().splitlines()]
BACKENDS = 'tracking.backends=["tensorboard", "mlflow", "wandb"]'


def test_a_real_round_becomes_the_scalars_its_line_holds():
    line = ROUNDS[1]  # round 2 of the demo: evaluated, FGRPO's per-task signals, 4 clients
    scalars = round_scalars(line)
    assert scalars["eval/macro"] == line["eval"]["macro"] == 0.428  # (0.4+0.472+0.596+0.244)/4
    assert scalars["eval_se/addition"] == line["eval_se"]["addition"]
    assert scalars["reward/normalised"] == line["reward"]["normalised"]
    assert scalars["reward/countdown"] == line["reward"]["by_task_normalised"]["countdown"]
    assert scalars["train/update-norm"] == line["train"]["update-norm"]
    for client in line["clients"]:
        cid = client["client-id"]
        assert scalars[f"client/{cid}/weight"] == client["weight"]
        assert scalars[f"client/{cid}/num-examples"] == client["num-examples"]
        for task, seen in client["tasks"].items():
            assert scalars[f"client/{cid}/{task}/signal"] == seen["signal"]
            assert scalars[f"client/{cid}/{task}/gain"] == seen["gain"]
    assert sum(scalars[f"client/{c['client-id']}/weight"] for c in line["clients"]) == (
        pytest.approx(1.0)
    )
    assert not any(k.startswith("eval") for k in round_scalars(ROUNDS[0]))  # not evaluated


def test_client_steps_run_on_across_rounds():
    record = {"round": 3, "client-steps": {"b": {"loss": [0.5, 0.25]}, "a": {"reward": [1.0, 2.0]}}}
    assert client_steps(record, steps_per_round=2) == [
        (5, {"client-steps/a/reward": 1.0, "client-steps/b/loss": 0.5}),
        (6, {"client-steps/a/reward": 2.0, "client-steps/b/loss": 0.25}),
    ]


def run_dir(tmp_path: Path) -> Path:
    """What a finished run directory holds that the trackers log at the end."""
    out = tmp_path / "run"
    (out / "plots").mkdir(parents=True)
    plt.plot([0, 1], [0.2, 0.4])
    plt.savefig(out / "plots" / "accuracy.png")
    plt.close()
    (out / "final" / "adapter").mkdir(parents=True)
    (out / "final" / "adapter" / "adapter_model.safetensors").write_bytes(b"weights")
    (out / "summary.json").write_text("{}")
    (out / "config.toml").write_text("seed = 0\n")
    return out


def demo_config(*extra: str):
    return load_config(DEMO / "config.toml", [BACKENDS, *extra])


def test_every_backend_holds_every_round_the_config_and_the_artifacts(tmp_path):
    out = run_dir(tmp_path)
    cfg = demo_config()
    tracker = Tracker(cfg, out, package_versions(), resumed_after=None)
    tracker.log_round({"round": 0, "eval": {"macro": 0.39}, "eval_se": {"macro": 0.01}})
    for record in ROUNDS:
        tracker.log_round(record)
    tracker.finish()
    evaluated = [0] + [r["round"] for r in ROUNDS if "eval" in r]

    events = tensorboard(out / "tensorboard")
    assert tb_steps(events, "eval/macro") == evaluated
    assert tb_steps(events, "client/client-0/weight") == list(range(1, 9))
    assert [e.value for e in events.Scalars("eval/macro")][1:] == [
        pytest.approx(r["eval"]["macro"]) for r in ROUNDS if "eval" in r
    ]
    config = events.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "| strategy.name | fgrpo |" in config and "| federation.rounds | 8 |" in config
    assert events.Images("plots/accuracy")

    client = mlflow_client(out / "mlflow")
    (run,) = client.search_runs([client.get_experiment_by_name("fgrpo").experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_name == "run"
    assert run.data.params["strategy.name"] == "fgrpo" and run.data.params["seed"] == "0"
    assert run.data.params["versions.trl"] == package_versions()["trl"]
    assert mlflow_steps(client, run.info.run_id, "eval/macro") == evaluated
    assert mlflow_steps(client, run.info.run_id, "client/client-3/gain") == list(range(1, 9))
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "adapter")}
    assert artifacts == {"adapter/adapter_model.safetensors"}
    assert {a.path for a in client.list_artifacts(run.info.run_id, "plots")} == {
        "plots/accuracy.png"
    }

    (wandb,) = wandb_runs(out).values()
    assert wandb["files"] == 1 and wandb["project"] == "fgrpo"
    assert wandb["config"]["strategy.name"] == "fgrpo"
    assert wandb_steps(wandb["history"], "eval/macro") == evaluated
    assert wandb_steps(wandb["history"], "client/client-1/weight") == list(range(1, 9))
    assert any(row.get("plots/accuracy/_type") == '"image-file"' for row in wandb["history"])
    assert json.loads((out / STATE_FILE).read_text())["last_round"] == 8


def test_a_resume_logs_what_a_killed_session_missed_and_nothing_twice(tmp_path):
    """The session logged round 5 but was killed before tracking.json said so: the resumed
    tracker replays the checkpoint's rounds, and each backend holds every round once."""
    out = run_dir(tmp_path)
    cfg = demo_config('tracking.backends=["tensorboard", "mlflow"]')
    first = Tracker(cfg, out, package_versions(), resumed_after=None)
    for record in ROUNDS[:5]:
        first.log_round(record)
    first.runs[0].writers["round"].close()  # the kill: what was flushed stays
    state = json.loads((out / STATE_FILE).read_text())
    (out / STATE_FILE).write_text(json.dumps({**state, "last_round": 4}))

    resumed = Tracker(cfg, out, package_versions(), resumed_after=6)  # checkpoint: round 6
    for record in ROUNDS:  # the journal replays metrics.jsonl, then the new rounds follow
        resumed.log_round(record)
    resumed.finish()
    events = tensorboard(out / "tensorboard")
    assert tb_steps(events, "client/client-0/weight") == list(range(1, 9))
    client = mlflow_client(out / "mlflow")
    (run,) = client.search_runs([client.get_experiment_by_name("fgrpo").experiment_id])
    assert run.info.run_id == state["mlflow"]["run_id"] and run.info.status == "FINISHED"
    assert mlflow_steps(client, run.info.run_id, "client/client-0/weight") == list(range(1, 9))


def test_an_unknown_backend_is_refused_naming_the_key(capsys, tmp_path):
    line = fails(
        capsys,
        ["run", *sets(tracking__backends=["tensorboard", "neptune"]), "--out", str(tmp_path)],
        "tracking.backends",
        "neptune",
    )
    assert "wandb" in line  # the choices


def test_a_backend_whose_package_is_absent_is_one_line_before_anything_runs(
    capsys, tmp_path, monkeypatch
):
    real = __import__("importlib.util").util.find_spec
    monkeypatch.setattr(
        "importlib.util.find_spec", lambda name, *a: None if name == "wandb" else real(name, *a)
    )
    fails(
        capsys,
        ["run", *sets(tracking__backends=["wandb"]), "--out", str(tmp_path / "run")],
        "tracking.backends",
        "wandb is not installed",
        "fgrpo[tracking]",
    )
    assert not (tmp_path / "run").exists()
