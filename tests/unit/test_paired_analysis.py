"""fgrpo.analysis.paired: a config key's values against a baseline value, paired by seed, by hand."""

import pytest

from fgrpo.analysis.paired import paired_against
from fgrpo.runtime.sweep_runs import Run


def run(strategy: str, mode: str, seed: int, final: float) -> Run:
    return Run(
        name=f"{strategy}-{mode}-{seed}",
        strategy=strategy,
        seed=seed,
        panel=f"model.lora_aggregation={mode}",
        summary={"final_eval": {"macro": final}},
        rounds=[],
        config={"model": {"lora_aggregation": mode}},
    )


def test_each_mode_minus_average_paired_by_seed():
    runs = [
        run("fedavg", "average", 0, 0.40),
        run("fedavg", "average", 1, 0.50),
        run("fedavg", "exact", 0, 0.43),
        run("fedavg", "exact", 1, 0.55),
        run("fedavg", "ffa", 0, 0.30),  # seed 1 missing: one pair only
        run("fgrpo", "exact", 0, 0.9),  # no fgrpo average: no row
    ]
    rows = {
        (r["strategy"], r["value"]): r
        for r in paired_against(runs, "model.lora_aggregation", "average")
    }
    assert set(rows) == {("fedavg", "exact"), ("fedavg", "ffa")}
    exact = rows[("fedavg", "exact")]
    # differences 0.03 and 0.05: mean 0.04, sd 0.01414, t(1) 12.706 -> half-width 0.127
    assert exact["pairs"] == 2 and exact["difference"] == pytest.approx(0.04)
    assert exact["interval"] == pytest.approx([0.04 - 0.12706, 0.04 + 0.12706], abs=1e-4)
    assert exact["final"][0] == pytest.approx(0.49) and exact["baseline_final"][0] == pytest.approx(
        0.45
    )
    assert rows[("fedavg", "ffa")]["pairs"] == 1 and rows[("fedavg", "ffa")]["interval"] is None
