"""fgrpo.analysis.paired: a config key's values against a baseline value, paired by seed, by hand."""

import subprocess
import sys
from pathlib import Path

import pytest

from fgrpo.analysis.paired import against_fedavg, paired_against
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


def setting_run(strategy: str, seed: int, start: float, final: float) -> Run:
    """A run whose macro went start -> final (round 0 -> round 2), tasks a and b alike."""
    summary = {
        "initial_eval": {"macro": start, "a": start, "b": start},
        "initial_eval_se": {"macro": 0.02, "a": 0.02, "b": 0.02},
        "final_eval": {"macro": final, "a": final + 0.1, "b": final - 0.1},
    }
    rounds = [{"round": 2, "eval": {"macro": final}, "eval_se": {"macro": 0.02}}]
    return Run(f"{strategy}-{seed}", strategy, seed, "all", summary, rounds, {}, {})


def test_a_settings_strategies_against_fedavg_by_hand():
    by_strategy = {
        "fedavg": [setting_run("fedavg", s, 0.2, f) for s, f in enumerate([0.40, 0.50, 0.45])],
        "fgrpo": [setting_run("fgrpo", s, 0.2, f) for s, f in enumerate([0.42, 0.56, 0.46])],
        "centralized": [setting_run("centralized", 0, 0.2, 0.7)],  # one seed: no interval
    }
    record = against_fedavg(by_strategy)
    assert record["fedavg"]["minus_fedavg"] is None
    fgrpo = record["fgrpo"]
    # differences 0.02, 0.06, 0.01: mean 0.03, sd 0.026458, t(2) 4.303 -> half-width 0.065729
    assert fgrpo["minus_fedavg"]["difference"] == pytest.approx(0.03)
    assert fgrpo["minus_fedavg"]["interval"] == pytest.approx(
        [0.03 - 0.065729, 0.03 + 0.065729], abs=1e-5
    )
    assert fgrpo["minus_fedavg"]["pairs"] == 3
    assert fgrpo["final_macro"] == {"0": 0.42, "1": 0.56, "2": 0.46}
    assert fgrpo["final_macro_mean"] == pytest.approx(0.48)
    assert fgrpo["final_macro_std"] == pytest.approx(0.072111, abs=1e-6)
    assert fgrpo["final_per_task"] == pytest.approx({"a": 0.58, "b": 0.38})
    assert fgrpo["curve"][0] == {"round": 0, "mean": pytest.approx(0.2), "std": 0.0}
    assert fgrpo["curve"][1]["mean"] == pytest.approx(0.48)
    assert record["centralized"]["minus_fedavg"] is None  # one pair


def test_real_model_seeds_names_a_directory_that_is_no_sweep_in_one_line(tmp_path):
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "real_model_seeds.py"
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "missing"), "--out", str(tmp_path / "r")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        f"real_model_seeds: {tmp_path / 'missing'}: no sweep.json; is it an `fgrpo sweep --out` "
        "directory?"
    ]
    assert not list(tmp_path.glob("r.*"))  # nothing written
