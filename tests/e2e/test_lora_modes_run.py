"""Whole runs of the LoRA aggregation modes: exact's residual travels and is checkpointed, fedsa's
personal B survives rounds and a resume, bytes on the wire are logged, and every export scores what
the server evaluated."""

import json

import numpy as np
import pytest
from flwr.app import RecordDict
from peft import AutoPeftModelForCausalLM
from safetensors.numpy import load_file
from transformers import AutoModelForCausalLM

from fgrpo.cli.models import evaluate_model, export_run
from fgrpo.client.optimizer_state import STATE_KEY as OPTIMIZER
from fgrpo.client.persistence import StateStore
from fgrpo.client.personal_lora import STATE_KEY as OWN_B
from fgrpo.core.errors import UserInputError
from fgrpo.models.transport import from_arrayrecord
from fgrpo.runtime.checkpoint import load_checkpoint
from fgrpo.runtime.configs import load_config
from fgrpo.runtime.runner import run_experiment
from fgrpo.server.lora_aggregation import PERSONAL_STATE_KEY, STATE_KEY

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


def client_b(run, rnd: int, sessions: list[int]) -> dict[str, dict[str, np.ndarray]]:
    """Each client's own B as the state saved after round ``rnd`` holds it (``sessions``: the
    last round of each earlier server session, as persistence.StateStore takes them)."""
    out = {}
    for client in sorted((run / "clients").iterdir()):
        state = RecordDict()
        StateStore(client, sessions).restore(state, rnd + 1)  # what round rnd + 1 starts from
        out[client.name] = from_arrayrecord(state[OWN_B])
    return out


def test_a_fedsa_run_keeps_each_clients_b_through_a_resume_and_exports_a_clients_model(tmp_path):
    """One client's B never leaves it but to be scored: a run of 2 rounds and a run of 1 round
    resumed for a second agree bit for bit on every B, and a client's export is Ā + B_k and
    scores what the server scored for that client."""
    fedsa = [*SMALL, "model.name=tiny", "eval.max_new_tokens=16", "model.lora_aggregation=fedsa"]
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    run_experiment(load_config(None, fedsa), whole)
    run_experiment(load_config(None, [*fedsa, "federation.rounds=1"]), broken)
    run_experiment(load_config(None, fedsa), broken, resume=True)
    records = check_run_dir(whole, rounds=2, clients=2)
    assert all(
        r["bytes"]["received"] > r["bytes"]["sent"] > 0 for r in records
    )  # A out, A + B back
    kept = {w: load_checkpoint(w).strategy[PERSONAL_STATE_KEY] for w in (whole, broken)}
    own = {whole: client_b(whole, 2, []), broken: client_b(broken, 2, [1])}
    assert sorted(kept[whole]) == sorted(own[whole]) == sorted(own[broken])
    assert any(np.abs(b).max() > 0 for s in own[whole].values() for b in s.values())  # B trained
    for cid, state in own[whole].items():
        for key, b in state.items():  # the server keeps what the client has, resumed or not
            np.testing.assert_array_equal(own[broken][cid][key], b, err_msg=key)
            np.testing.assert_array_equal(np.asarray(kept[whole][cid]["b"][key]), b)
            np.testing.assert_array_equal(np.asarray(kept[broken][cid]["b"][key]), b)
    final = records[-1]["local"]["clients"]
    assert [
        json.loads(line)["local"] for line in (broken / "metrics.jsonl").read_text().splitlines()
    ][-1]["clients"] == final
    with pytest.raises(UserInputError, match="--client"):
        export_run(whole, tmp_path / "global")
    cid = sorted(final)[0]
    out = export_run(whole, tmp_path / "client", client=cid)
    assert AutoPeftModelForCausalLM.from_pretrained(out) is not None  # stock PEFT loads it
    exported = load_file(out / "adapter_model.safetensors")
    assert any(
        np.array_equal(v, own[whole][cid][k]) for k, v in exported.items() if k in own[whole][cid]
    )
    accuracy, _ = evaluate_model(load_config(None, fedsa), "tiny", out)
    assert accuracy == pytest.approx(final[cid]["global"])
