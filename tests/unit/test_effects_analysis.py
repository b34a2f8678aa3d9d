"""fgrpo.analysis.effects: paired differences over seeds, worked by hand; a sweep file's
[effects] and `fgrpo report` computing them across a profile's slices."""

import json
import shutil
from pathlib import Path

import pytest

from fgrpo.analysis.effects import (
    AmbiguousSelection,
    compute_effects,
    difference,
    effects_markdown,
    select,
    task_gains,
)
from fgrpo.cli.main import main
from fgrpo.core.errors import ConfigError
from fgrpo.runtime.grid import read_sweep
from fgrpo.runtime.sweep_runs import Run

EXPLORATION = Path(__file__).resolve().parents[2] / "benchmarks/results/effects/exploration"


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
    with pytest.raises(AmbiguousSelection, match="fedavg-0 and fedavg-0"):
        select(RUNS, {"strategy.name": "fedavg"})


def test_an_effect_a_slice_makes_ambiguous_is_a_noted_row_and_the_others_still_come_out():
    # a tuning slice (two partitions of fedavg per seed) under a profile whose effect names only
    # the strategy: that row cannot be computed here, the heterogeneity row still can
    effects = compute_effects(
        {
            "fedavg-vs-central": {
                "better": {"strategy.name": "centralized"},
                "worse": {"strategy.name": "fedavg"},
            },
            "heterogeneity": {
                "better": {"strategy.name": "fedavg", "data.partition": "iid"},
                "worse": {"strategy.name": "fedavg", "data.partition": "dirichlet"},
            },
        },
        RUNS,
    )
    ambiguous = effects["fedavg-vs-central"]
    assert (ambiguous["difference"], ambiguous["seeds"], ambiguous["shown"]) == (None, 0, False)
    assert ambiguous["note"].startswith("ambiguous on these runs: {'strategy.name': 'fedavg'}")
    assert effects["heterogeneity"]["seeds"] == 3
    table = effects_markdown(effects)
    assert "| fedavg-vs-central | n/a | n/a | 0 | no |" in table
    assert table[-1].startswith("- fedavg-vs-central: ambiguous on these runs")


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


SWEEP = """\
[base]
model = {name = "tiny-random"}
[grid]
"strategy.name" = ["fedavg", "centralized"]
"""


def test_a_sweep_file_declares_its_effects_and_a_bad_one_is_named(tmp_path):
    path = tmp_path / "effects.toml"
    path.write_text(
        SWEEP + '[effects.central]\nbetter = {"strategy.name" = "centralized"}\n'
        'worse = {"strategy.name" = "fedavg"}\n[effects.learns]\nlearns = {"strategy.name" = '
        '"centralized"}\nmin_se = 2.0\n'
    )
    assert read_sweep(path).effects["learns"] == {
        "learns": {"strategy.name": "centralized"},
        "min_se": 2.0,
    }
    for bad, culprit in [
        ('[effects.x]\nbetter = {"strategy.name" = "fedavg"}\n', "effects.x: needs better and"),
        ('[effects.x]\nlearns = {"strategy.nam" = "fedavg"}\n', "effects.x.learns.strategy.nam"),
        ("[effects.x]\nlearn = {}\n", "effects.x: expected a table of"),
    ]:
        path.write_text(SWEEP + bad)
        with pytest.raises(ConfigError, match=culprit):
            read_sweep(path)


def test_fgrpo_report_computes_the_effects_across_a_profiles_slices(tmp_path, capsys):
    """The committed exploration sweeps (seed 0), with effects as a sweep file declares them."""
    for name in ("D_fed", "D_central"):
        shutil.copytree(EXPLORATION / name, tmp_path / name)
    manifest = json.loads((tmp_path / "D_fed" / "sweep.json").read_text())
    manifest["effects"] = {
        "heterogeneity": {
            "better": {
                "strategy.name": "fedavg",
                "data.partition": "iid",
                "strategy.server_lr": 1.0,
            },
            "worse": {
                "strategy.name": "fedavg",
                "data.partition": "dirichlet",
                "strategy.server_lr": 1.0,
            },
        },
        "learns": {"learns": {"strategy.name": "centralized"}},
    }
    (tmp_path / "D_fed" / "sweep.json").write_text(json.dumps(manifest))
    argv = ["report", str(tmp_path / "D_fed"), "--with", str(tmp_path / "D_central")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "| heterogeneity | +0.022 | n/a | 1 | no |" in out
    effects = json.loads((tmp_path / "D_fed" / "effects.json").read_text())
    assert effects["effects"]["learns: sorting"]["difference"] == pytest.approx(0.934 - 0.462)
    assert effects["machine"]["cpus"] == 2 and effects["command"].startswith("fgrpo report")
    assert main(["report", str(tmp_path / "D_fed")]) == 0  # without the centralized slice
    assert "| learns | n/a | n/a | 0 | no |" in capsys.readouterr().out


def test_a_whole_table_selects_by_reward_scale_and_a_pair_not_run_yet_is_a_row_of_no_seeds():
    scaled = [
        run("fedavg", s, m, data={"partition": "dirichlet", "reward_scale": {"addition": 100.0}})
        for s, m in enumerate([0.47, 0.48, 0.50])
    ]
    runs = [*RUNS, *scaled]
    plain = select(
        runs, {"strategy.name": "fedavg", "data.partition": "dirichlet", "data.reward_scale": {}}
    )
    assert [r.summary["final_eval"]["macro"] for r in plain.values()] == [0.48, 0.49, 0.51]
    heavy = select(runs, {"data.reward_scale": {"addition": 100.0}})
    assert [r.summary["final_eval"]["macro"] for r in heavy.values()] == [0.47, 0.48, 0.50]
    effects = compute_effects(
        {
            "drift": {
                "better": {"strategy.name": "centralized"},
                "worse": {"strategy.name": "scaffold"},
            }
        },
        runs,
    )
    assert effects["drift"] == {"difference": None, "interval": None, "seeds": 0, "shown": False}
    assert effects_markdown(effects)[-1] == "| drift | n/a | n/a | 0 | no |"


def test_a_sweep_file_may_select_by_a_whole_table(tmp_path):
    path = tmp_path / "effects.toml"
    path.write_text(
        SWEEP + '[effects.x]\nbetter = {"data.reward_scale" = {addition = 100.0}}\n'
        'worse = {"data.reward_scale" = {}}\n'
    )
    assert read_sweep(path).effects["x"]["worse"] == {"data.reward_scale": {}}
    path.write_text(SWEEP + '[effects.x]\nbetter = {"data.reward_scales" = {}}\nworse = {}\n')
    with pytest.raises(ConfigError, match="effects.x.better.data.reward_scales"):
        read_sweep(path)
