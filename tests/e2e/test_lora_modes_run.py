"""Whole runs with model.lora_aggregation = exact: the residual travels and is checkpointed, bytes on
the wire are logged, and the merged export scores what the server evaluated."""

import json

import numpy as np
import pytest
from flwr.app import RecordDict
from peft import AutoPeftModelForCausalLM
from transformers import AutoModelForCausalLM

from fgrpo.cli.models import evaluate_model, export_run
from fgrpo.client.optimizer_state import STATE_KEY as OPTIMIZER
from fgrpo.client.persistence import StateStore
from fgrpo.core.errors import UserInputError
from fgrpo.runtime.checkpoint import load_checkpoint
from fgrpo.runtime.configs import load_config
from fgrpo.runtime.runner import run_experiment
from fgrpo.server.lora_aggregation import STATE_KEY

from ..run_checks import SMALL as RUN_SMALL
from ..run_checks import check_run_dir

SMALL = [
    *RUN_SMALL,
    "grpo.learning_rate=0.02",
    "federation.num_clients=2",
    "federation.rounds=2",
    "strategy.name=fedavg",
]


def test_an_exact_run_carries_its_residual_and_exports_what_the_server_scored(tmp_path):
    cfg = load_config(None, [*SMALL, "model.lora_aggregation=exact"])
    run = tmp_path / "run"
    run_experiment(cfg, run)
    records = check_run_dir(run, rounds=2, clients=2)
    first, second = (r["bytes"] for r in records)
    assert first["received"] == first["sent"] > 0  # two adapters out, two back
    assert second["sent"] > first["sent"]  # round 2 also sends the residual of round 1
    residual = load_checkpoint(run).strategy[STATE_KEY]
    assert residual and max(float(np.abs(v).max()) for v in residual.values()) > 0
    with pytest.raises(UserInputError, match="--merged"):
        export_run(run, tmp_path / "adapter")
    out = export_run(run, tmp_path / "merged", merged=True)
    AutoModelForCausalLM.from_pretrained(out)  # stock transformers loads it
    accuracy, _ = evaluate_model(cfg, str(out))
    summary = json.loads((run / "summary.json").read_text())
    assert accuracy == pytest.approx(summary["final_eval"])


def test_an_average_run_keeping_adamw_logs_the_same_bytes_each_round(tmp_path):
    """average sends the adapter alone every round; with federation.optimizer_state = keep each
    client's saved state holds AdamW's moments, its step count running on across rounds."""
    cfg = load_config(None, [*SMALL, "federation.optimizer_state=keep"])
    run_experiment(cfg, tmp_path)
    first, second = (r["bytes"] for r in check_run_dir(tmp_path, rounds=2, clients=2))
    assert first == second and first["sent"] > 0
    assert STATE_KEY not in load_checkpoint(tmp_path).strategy
    for client in sorted((tmp_path / "clients").iterdir()):
        state = RecordDict()
        StateStore(client, sessions=[]).restore(state, 3)  # what round 3 would start from
        steps = {float(a.numpy()) for k, a in state[OPTIMIZER].items() if k.endswith("/step")}
        assert steps == {2.0 * cfg.federation.local_steps}


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["ffa", "rolora"])
def test_an_ffa_or_rolora_run_exports_a_plain_adapter_that_scores_what_the_server_scored(
    tmp_path, mode
):
    cfg = load_config(None, [*SMALL, f"model.lora_aggregation={mode}"])
    run = tmp_path / "run"
    run_experiment(cfg, run)
    check_run_dir(run, rounds=2, clients=2)
    assert STATE_KEY not in load_checkpoint(run).strategy  # the plain average is exact here
    out = export_run(run, tmp_path / "adapter")
    assert AutoPeftModelForCausalLM.from_pretrained(out) is not None  # stock PEFT loads it
    accuracy, _ = evaluate_model(cfg, cfg.model.name, out)
    summary = json.loads((run / "summary.json").read_text())
    assert accuracy == pytest.approx(summary["final_eval"])
