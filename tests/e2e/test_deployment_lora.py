"""model.lora_aggregation = exact in a real deployment: SuperNodes on loopback."""

import numpy as np
import pytest

from fgrpo.runtime.checkpoint import load_checkpoint
from fgrpo.server.lora_aggregation import STATE_KEY

from ..deployment import FAST, owner_source, rounds


@pytest.mark.slow
def test_exact_lora_aggregation_sends_its_residual_to_deployed_nodes(deploy, tmp_path):
    """model.lora_aggregation = exact over two SuperNodes: the residual R travels from round 2 on,
    is checkpointed, and the run finishes with both nodes training."""
    deployment = deploy()
    deployment.start_superlink()
    for owner in ("a", "b"):
        config = owner_source(tmp_path / owner, ("prompt", "answer"), "{}", 0.0, rows=4)
        (tmp_path / owner / "scoring.py").write_text(  # varies over samples: a GRPO signal
            "def score(completions, gold, **kwargs):\n"
            "    return [min(1.0, len(str(c)) / 100) for c in completions]\n"
        )
        deployment.start_supernode(
            f"node-{owner}", {"client-id": f"owner-{owner}", "data-config": str(config)}
        )
    deployment.wait_for_nodes(2)
    out = tmp_path / "run"
    overrides = {
        **FAST,
        "data.probe_size": 0,
        "model.lora_aggregation": "exact",
        "grpo.learning_rate": 0.05,
        "output.dir": str(out),
    }
    result = deployment.run(overrides, timeout=400)
    assert result.returncode == 0, result.stdout[-4000:]
    first, second = (r["bytes"] for r in rounds(out))
    assert second["sent"] > first["sent"]  # round 2's messages carry R beside the adapter
    assert all(r["failures"] == [] and len(r["clients"]) == 2 for r in rounds(out))
    residual = load_checkpoint(out).strategy[STATE_KEY]
    assert max(float(np.abs(v).max()) for v in residual.values()) > 0
