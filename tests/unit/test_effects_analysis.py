"""fgrpo.analysis.effects: paired differences over seeds, worked by hand."""

import pytest

from fgrpo.analysis.effects import difference, effects_markdown, select, task_gains
from fgrpo.runtime.sweep_runs import Run


def run(strategy: str, seed: int, macro: float, **config) -> Run:
    summary = {
        "final_eval": {"macro": macro, "addition": macro, "modular": 0.40},
        "initial_eval": {"macro": 0.30, "addition": 0.30, "modular": 0.40 - 0.01 * seed},
        "initial_eval_se": {"addition": 0.02, "modular": 0.02},
        "final_eval_se": {"addition": 0.02, "modular": 0.02},
    }
    tree = {"strategy": {"name": strategy}, "data": config.get("data", {})}
    return Run(f"{strategy}-{seed}", strategy, seed, "all", summary, [], {}, tree)


RUNS = [
    *(run("fedavg", s, m, data={"partition": "iid"}) for s, m in enumerate([0.50, 0.53, 0.52])),
    *(
        run("fedavg", s, m, data={"partition": "dirichlet"})
        for s, m in enumerate([0.48, 0.49, 0.51])
    ),
    *(run("centralized", s, m) for s, m in enumerate([0.60, 0.62, 0.61])),
]


def test_a_paired_difference_and_its_interval_by_hand():
    iid = select(RUNS, {"strategy.name": "fedavg", "data.partition": "iid"})
    skewed = select(RUNS, {"strategy.name": "fedavg", "data.partition": "dirichlet"})
    effect = difference(iid, skewed)
    # differences 0.02, 0.04, 0.01: mean 0.02333, sd 0.015275, t(2) = 4.303, half 0.03795
    assert effect["difference"] == pytest.approx(0.023333, abs=1e-6)
    assert effect["interval"] == pytest.approx([0.023333 - 0.037950, 0.023333 + 0.037950], abs=1e-5)
    assert effect["seeds"] == 3 and effect["shown"] is False  # the interval reaches below 0
    central = difference(select(RUNS, {"strategy.name": "centralized"}), iid)
    assert central["difference"] == pytest.approx(0.093333, abs=1e-6) and central["shown"]


def test_a_selection_that_picks_two_runs_of_a_seed_is_refused():
    with pytest.raises(ValueError, match="seed 0"):
        select(RUNS, {"strategy.name": "fedavg"})


def test_every_task_learns_needs_its_interval_above_zero_and_three_standard_errors():
    gains = task_gains(select(RUNS, {"strategy.name": "centralized"}))
    # addition: +0.30, +0.32, +0.31 over a gain se of hypot(0.02, 0.02) = 0.028284 -> 10.96 se
    assert gains["addition"]["difference"] == pytest.approx(0.31)
    assert gains["addition"]["in_se"] == pytest.approx(0.31 / 0.0282843, rel=1e-4)
    assert gains["addition"]["shown"]
    # modular: +0.00, +0.01, +0.02: interval [-0.0148, +0.0348] -> not shown
    assert gains["modular"]["difference"] == pytest.approx(0.01) and not gains["modular"]["shown"]
    table = effects_markdown({"every task learns: addition": gains["addition"]})
    assert table[-1].startswith("| every task learns: addition | +0.310 (+11.0 se) | [+0.285")
