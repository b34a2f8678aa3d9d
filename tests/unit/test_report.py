"""`fgrpo report` on small fake sweep directories shaped like real ones; the numbers checked by
hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tomli_w

from fgrpo.cli.main import main
from fgrpo.runtime.grid import point_name
from fgrpo.runtime.stats import paired_interval, t_critical
from fgrpo.server.round_reward import round_reward

INITIAL = 0.2
FINALS = {  # strategy -> final macro accuracy per seed 0, 1, 2 (panel data.alpha=0.1)
    "fgrpo": [0.30, 0.34, 0.32],
    "fedavg": [0.28, 0.30, 0.31],
    "local-only": [0.22, 0.24, 0.23],
}


def evaluation(macro: float) -> dict[str, float]:
    return {"addition": macro + 0.1, "sorting": macro - 0.1, "macro": macro}


def client(
    cid: str,
    reward: float,
    weight: float,
    gain: float,
    task: str = "addition",
    rollouts: float = 4.0,
) -> dict:
    return {
        "client-id": cid,
        "num-examples": 10,
        "reward": reward,
        "baseline": None,
        "gain": gain,
        "weight": weight,
        "tasks": {task: {"signal": reward, "rollouts": rollouts, "baseline": 0.0, "gain": gain}},
        "task-reward": {task: {"mean": reward, "rollouts": rollouts}},
    }


def write_run(run: Path, strategy: str, seed: int, final: float) -> None:
    """config.toml, metrics.jsonl (2 evaluated rounds), summary.json as `fgrpo run` writes them."""
    run.mkdir(parents=True)
    (run / "config.toml").write_text(tomli_w.dumps({"seed": seed, "strategy": {"name": strategy}}))
    middle = (INITIAL + final) / 2
    rounds = []
    for rnd, macro in ((1, middle), (2, final)):
        zero = {k: 0.01 for k in evaluation(macro)}
        clients = [
            client("client-0", macro, 0.6, 0.5 * rnd),
            client("client-1", macro - 0.1, 0.4, 0.1),
        ]
        rounds.append(
            {
                "round": rnd,
                "aggregated": True,
                "failures": [],
                "seconds": 10.0,
                "clients": clients,
                "train": {"reward": macro},
                "reward": round_reward(clients, {"addition": (0.0, 1.0)}),
                "eval": evaluation(macro),
                "eval_se": zero,
            }
        )
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rounds))
    se = {k: 0.01 for k in evaluation(final)}
    (run / "summary.json").write_text(
        json.dumps(
            {
                "strategy": strategy,
                "rounds": 2,
                "rounds_aggregated": 2,
                "seconds": 42.0,
                "initial_eval": evaluation(INITIAL),
                "initial_eval_se": se,
                "final_eval": evaluation(final),
                "final_eval_se": se,
                "best_round": 2,
                "best_macro": final,
                "macro_gain": final - INITIAL,
                "macro_gain_se": 0.014,
                "train_reward_by_round": [r["reward"]["normalised"] for r in rounds],
                "failures": 0,
            }
        )
    )
    (run / "resources.json").write_text(
        json.dumps({"wall_seconds": 42.0, "cpu_percent_mean": 150.5, "peak_rss_mb": 900.0})
    )


@pytest.fixture
def sweep_dir(tmp_path: Path) -> Path:
    points = []
    for strategy, finals in FINALS.items():
        for seed, final in enumerate(finals):
            values = {"strategy.name": strategy, "data.alpha": 0.1, "seed": seed}
            points.append(
                {
                    "name": point_name(values),
                    "values": values,
                    "status": "done",
                    "seconds": 42.0,
                    "error": None,
                }
            )
            write_run(tmp_path / point_name(values), strategy, seed, final)
    values = {"strategy.name": "fgrpo", "data.alpha": 1.0, "seed": 0}  # a second panel, one seed
    points.append(
        {
            "name": point_name(values),
            "values": values,
            "status": "done",
            "seconds": 42.0,
            "error": None,
        }
    )
    write_run(tmp_path / point_name(values), "fgrpo", 0, 0.5)
    crashed = {"strategy.name": "fedavg", "data.alpha": 1.0, "seed": 0}
    points.append(
        {
            "name": point_name(crashed),
            "values": crashed,
            "status": "failed",
            "seconds": 3.0,
            "error": "fgrpo: boom",
        }
    )
    machine = {"platform": "Linux-x86_64", "cpus": 2, "gpu": False}
    (tmp_path / "sweep.json").write_text(
        json.dumps(
            {
                "sweep": "fake.toml",
                "slice": None,
                "command": ["fgrpo", "sweep"],
                "machine": machine,
                "started": "2026-11-26T10:00:00+00:00",
                "updated": "2026-11-26T11:00:00+00:00",
                "points": points,
            }
        )
    )
    return tmp_path


def table_row(text: str, section: str, first_cell: str) -> list[str]:
    body = text.split(f"## {section}\n", 1)[1]
    line = next(line for line in body.splitlines() if line.startswith(f"| {first_cell} |"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_report_tables_and_figures(sweep_dir, capsys):
    assert main(["report", str(sweep_dir), "--target", "0.3"]) == 0
    out = sweep_dir / "report"
    for png in ("macro.png", "reward.png", "fgrpo_clients.png"):
        assert (out / png).stat().st_size > 5000
    text = (out / "report.md").read_text()
    # fgrpo: finals 0.30 0.34 0.32 -> mean 0.32, sample std 0.02; worst task (sorting) 0.1 lower;
    # round 1 sits half-way from 0.2, below 0.3, so every seed reaches the target at round 2.
    assert table_row(text, "data.alpha=0.1", "fgrpo") == [
        "fgrpo",
        "3",
        "0.320 ± 0.020",
        "0.320 ± 0.020",
        "0.220 ± 0.020",
        "2.0 (3/3)",
        "0.420",
        "0.220",
    ]
    # fedavg: 0.28 0.30 0.31 -> mean 0.2967, std sqrt(0.00046667 / 2) = 0.0153; 0.28 never reaches
    # 0.3
    assert table_row(text, "data.alpha=0.1", "fedavg")[2:6] == [
        "0.297 ± 0.015",
        "0.297 ± 0.015",
        "0.197 ± 0.015",
        "2.0 (2/3)",
    ]
    assert table_row(text, "data.alpha=0.1", "local-only (reference)")[1] == "3"
    # paired by seed: fgrpo - fedavg = 0.02 0.04 0.01 -> mean 0.0233, sd 0.0153,
    # half-width t(2) 4.303 x 0.0153 / sqrt(3) = 0.0379 -> [-0.015, +0.061]
    paired = text.split("paired by seed")[1]
    assert "| fgrpo | 3 | +0.023 | [-0.015, +0.061] |" in paired
    assert "| local-only | 3 | -0.067 |" in paired
    assert (
        "## data.alpha=1.0" in text and "| fgrpo | 1 | 0.500 ± n/a (1 seed) |" in text
    )  # no spread from one seed
    assert "strategy.name=fgrpo,data.alpha=0.1,seed=0 | 42 | 42 | 150.5 | 900 | - | - |" in text
    assert "- strategy.name=fedavg,data.alpha=1.0,seed=0: failed (fgrpo: boom)" in text
    assert "Machine: Linux-x86_64, 2 CPUs, no GPU; sweep started 2026-11-26T10:00:00+00:00" in text
    assert str(out / "report.md") in capsys.readouterr().out


def test_default_target_is_the_start_plus_five_points(sweep_dir):
    from fgrpo.runtime.report import write_report

    text = write_report(sweep_dir).read_text()
    assert "macro accuracy 0.250" in text
    # fedavg seed 0: round 1 at (0.2 + 0.28) / 2 = 0.24 < 0.25, so round 2; the others reach it at
    # round 1
    assert table_row(text, "data.alpha=0.1", "fedavg")[5] == "1.3 (3/3)"


def test_paired_interval_by_hand():
    mean, low, high = paired_interval([0.30, 0.34, 0.32], [0.28, 0.30, 0.31])
    assert mean == pytest.approx(0.07 / 3)
    assert high - mean == pytest.approx(4.303 * (0.00046667 / 2) ** 0.5 / 3**0.5, rel=1e-3)
    assert paired_interval([0.3], [0.2]) is None
    assert t_critical(35) == 2.042  # between rows: the smaller df, a wider interval


def test_report_refuses_a_directory_that_is_no_sweep(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "no sweep.json" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "missing")]) == 2


@pytest.fixture
def figures(monkeypatch):
    """Every figure saved, by file name, kept open for its artists to be inspected (savefig itself
    runs)."""
    from matplotlib.figure import Figure

    saved, savefig = {}, Figure.savefig
    monkeypatch.setattr(
        Figure,
        "savefig",
        lambda fig, path, **kw: (saved.__setitem__(Path(path).name, fig), savefig(fig, path, **kw))[
            1
        ],
    )
    return saved


def bands(ax) -> list:
    from matplotlib.collections import PolyCollection

    return [c for c in ax.collections if isinstance(c, PolyCollection)]


def band_height(band) -> float:
    ys = band.get_paths()[0].vertices[:, 1]
    return float(ys.max() - ys.min())


def integer_ticks(ax) -> bool:
    return all(float(t).is_integer() for t in ax.get_xticks())


def test_sweep_curves_carry_bands_from_zero_with_whole_rounds(sweep_dir, figures):
    main(["report", str(sweep_dir)])
    macro, reward = figures["macro.png"].axes, figures["reward.png"].axes
    three_seeds, one_seed = (
        macro[0],
        macro[1],
    )  # panels data.alpha=0.1 (3 strategies x 3 seeds), 1.0 (1 seed)
    assert len(bands(three_seeds)) == 3 and len(bands(one_seed)) == 1
    assert all(
        band_height(b) > 0 for b in bands(three_seeds) + bands(one_seed)
    )  # one seed: its binomial se
    assert "±1 std over 3 seeds" in three_seeds.get_legend_handles_labels()[1][0]
    assert "±1 binomial se" in one_seed.get_legend_handles_labels()[1][0]
    assert all(ax.get_ylim()[0] == 0 for ax in macro)  # the y-axis is not zoomed onto the curves
    for fig in figures.values():
        assert all(integer_ticks(ax) for ax in fig.axes if ax.get_visible())
    # the plotted round reward is metrics.jsonl's reward.normalised: fgrpo's panel of 1 seed,
    # clients at macro and macro - 0.1 over 4 rollouts each of addition ([0, 1]): 0.35 - 0.05 and
    # 0.5 - 0.05
    assert list(reward[1].lines[0].get_ydata()) == pytest.approx([0.30, 0.45])
    assert all(ax.get_ylim() == (0, 1) for ax in reward if ax.get_visible())


def test_run_plots_and_console_show_the_logged_round(tmp_path, figures):
    from fgrpo.runtime.reports import write_plots
    from fgrpo.server.federation import round_line

    clients = [
        client("client-0", 9.0, 0.9, 0.0, task="multiplication", rollouts=12.0)
        | {"num-examples": 90},
        client("client-1", 0.0, 0.1, 0.0),
    ]
    # multiplication 9 of [0, 10] over 12 rollouts, addition 0 of [0, 1] over 4: the round's reward
    # is (12 * 0.9 + 4 * 0) / 16 = 0.675 of the tasks' ranges (raw: 8.1 weighted by num-examples,
    # 4.5 unweighted)
    reward = round_reward(clients, {"multiplication": (0.0, 10.0), "addition": (0.0, 1.0)})
    assert reward["normalised"] == pytest.approx(0.675) and reward[
        "by_task_normalised"
    ] == pytest.approx({"addition": 0.0, "multiplication": 0.9})
    rounds = [
        {
            "round": rnd,
            "aggregated": True,
            "failures": [],
            "seconds": 1.0,
            "clients": clients,
            "train": {"reward": 8.1},
            "reward": reward,
            "eval": evaluation(0.3 + rnd / 10),
            "eval_se": {k: 0.03 for k in evaluation(0)},
        }
        for rnd in (1, 2, 3)
    ]
    initial = {"eval": evaluation(0.3), "eval_se": {k: 0.03 for k in evaluation(0)}}
    write_plots(tmp_path, initial, rounds)
    (accuracy,), (rewards, weights) = figures["accuracy.png"].axes, figures["reward.png"].axes
    assert len(bands(accuracy)) == 3 and all(
        band_height(b) > 0.06 for b in bands(accuracy)
    )  # every task's ±se
    assert "binomial se" in accuracy.get_title() and accuracy.get_ylim() == (0, 1)
    assert all(integer_ticks(ax) for ax in (accuracy, rewards, weights))
    plotted = {line.get_label(): list(line.get_ydata()) for line in rewards.lines}
    assert sorted(plotted) == ["addition", "multiplication", "round"]
    assert plotted["multiplication"] == pytest.approx([0.9] * 3) and plotted[
        "round"
    ] == pytest.approx([0.675] * 3)
    assert plotted["addition"] == [0.0] * 3
    assert rewards.get_ylim() == (0, 1)
    assert "reward 0.675" in round_line(1, 3, rounds[0])
