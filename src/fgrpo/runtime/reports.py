"""Plots and the human summary of one run, from its metrics.jsonl."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from fgrpo.server.round_reward import train_reward

Evaluation = dict[
    str, dict[str, float]
]  # {"eval": accuracy per task + macro, "eval_se": their standard errors}


def evaluated(initial: Evaluation | None, rounds: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The evaluated points of a run, round 0 (the starting model) first."""
    start = [{"round": 0, **initial}] if initial else []
    return start + [r for r in rounds if r.get("eval")]


def accuracy_series(
    initial: Evaluation | None, rounds: list[dict[str, Any]]
) -> dict[str, list[tuple[int, float, float]]]:
    """Per task (and macro): (round, accuracy, standard error) points."""
    series: dict[str, list[tuple[int, float, float]]] = {}
    for point in evaluated(initial, rounds):
        se = point.get("eval_se", {})
        for task, acc in point["eval"].items():
            series.setdefault(task, []).append((point["round"], acc, se.get(task, 0.0)))
    return series


def round_axis(ax: Any) -> None:
    """Rounds are whole numbers: no 1.5 tick on any plot."""
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("round")


def band(ax: Any, xs: list[int], ys: list[float], spread: list[float], color: Any) -> None:
    """The uncertainty band of a curve: ys ± spread (a PolyCollection the tests look for)."""
    ax.fill_between(
        xs,
        [y - e for y, e in zip(ys, spread, strict=False)],
        [y + e for y, e in zip(ys, spread, strict=False)],
        color=color,
        alpha=0.15,
    )


def save_figure(fig: Any, path: Path, dpi: int = 110) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def plot_accuracy(out: Path, initial: Evaluation | None, rounds: list[dict[str, Any]]) -> Path:
    fig, ax = plt.subplots(figsize=(6, 4))
    for task, pts in accuracy_series(initial, rounds).items():
        xs, ys, ses = (list(v) for v in zip(*pts, strict=False))
        macro = task == "macro"
        (line,) = ax.plot(
            xs,
            ys,
            marker="o",
            lw=2.5 if macro else 1.2,
            label=task,
            color="black" if macro else None,
        )
        band(ax, xs, ys, ses, line.get_color())
    # the whole [0, 1] scale: a zoomed axis makes a change within the noise look like learning
    ax.set(
        ylabel="greedy accuracy (held-out)",
        title="Accuracy per task (band: ±1 binomial se)",
        ylim=(0, 1),
    )
    round_axis(ax)
    ax.legend(fontsize=8)
    return save_figure(fig, out / "accuracy.png")


def plot_reward(out: Path, rounds: list[dict[str, Any]]) -> Path:
    fig, (ax_r, ax_w) = plt.subplots(1, 2, figsize=(10, 4))
    by_task: dict[str, list[tuple[int, float]]] = {}
    for r in rounds:
        for task, fraction in (r.get("reward") or {}).get("by_task_normalised", {}).items():
            by_task.setdefault(task, []).append((r["round"], fraction))
    for task, pts in sorted(by_task.items()):
        ax_r.plot(*zip(*pts, strict=False), marker=".", lw=1.2, label=task)
    trained = [(r["round"], train_reward(r)) for r in rounds if train_reward(r) is not None]
    if trained:
        ax_r.plot(*zip(*trained, strict=False), "k-", lw=2.5, label="round")
    per_client: dict[str, list[tuple[int, float]]] = {}
    for r in rounds:
        for c in r["clients"]:
            per_client.setdefault(c["client-id"], []).append((r["round"], c["weight"]))
    for cid, pts in sorted(per_client.items()):
        ax_w.plot(*zip(*pts, strict=False), marker=".", label=cid)
    # each task on its own declared range: raw rewards ({0, 1} beside {0, 10}) are not comparable
    ax_r.set(
        ylabel="rollout reward (fraction of the task's range)",
        title="Training reward per task",
        ylim=(0, 1),
    )
    ax_w.set(ylabel="aggregation weight", title="Client weight", ylim=(0, None))
    for ax in (ax_r, ax_w):
        round_axis(ax)
    ax_r.legend(fontsize=7)
    ax_w.legend(fontsize=7)
    return save_figure(fig, out / "reward.png")


def write_plots(
    out_dir: Path, initial: Evaluation | None, rounds: list[dict[str, Any]]
) -> list[Path]:
    plots = out_dir / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    return [plot_accuracy(plots, initial, rounds), plot_reward(plots, rounds)]


def summarise(
    cfg_name: str, initial: Evaluation | None, rounds: list[dict[str, Any]], seconds: float
) -> dict[str, Any]:
    """summary.json: start, best and final accuracy with standard errors; the gain in standard
    errors."""
    points = evaluated(initial, rounds)
    final = points[-1] if len(points) > (1 if initial else 0) else None
    best = max(points, key=lambda p: p["eval"]["macro"]) if points else None
    gain = gain_se = None
    if final and initial:
        gain = final["eval"]["macro"] - initial["eval"]["macro"]
        gain_se = math.hypot(final["eval_se"]["macro"], initial["eval_se"]["macro"])
    summary = {
        "strategy": cfg_name,
        "rounds": len(rounds),
        "rounds_aggregated": sum(
            1 for r in rounds if r.get("aggregated", True)
        ),  # 0: nothing was learnt
        "seconds": round(seconds, 1),
        "initial_eval": initial["eval"] if initial else None,
        "initial_eval_se": initial["eval_se"] if initial else None,
        "final_eval": final["eval"] if final else None,
        "final_eval_se": final["eval_se"] if final else None,
        "best_round": best["round"] if best else None,
        "best_macro": best["eval"]["macro"] if best else None,
        "macro_gain": gain,
        "macro_gain_se": gain_se,  # of independent samples: conservative, the prompts are the same
        "train_reward_by_round": [train_reward(r) for r in rounds],
        "failures": sum(len(r.get("failures", [])) for r in rounds),
    }
    local = [r["local"] for r in rounds if "local" in r]
    if local:  # local-only: each client's own adapter, and the means
        summary["final_local"] = local[-1]
    return summary


def as_typed(path: Path) -> Path:
    """A path as the user would type it: relative to the current directory when it lies below it."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        return path


def summary_text(summary: dict[str, Any], out_dir: Path) -> str:
    lines = [f"fgrpo: {summary['rounds']} rounds of {summary['strategy']} in {summary['seconds']}s"]
    if summary["initial_eval"] and summary["final_eval"]:
        first, last = summary["initial_eval"], summary["final_eval"]
        se0, se1 = summary["initial_eval_se"]["macro"], summary["final_eval_se"]["macro"]
        gain, gain_se = summary["macro_gain"], summary["macro_gain_se"]
        lines.append(
            f"  macro accuracy: {first['macro']:.3f} ± {se0:.3f} (round 0) -> {last['macro']:.3f} ± {se1:.3f} "
            f"(final), gain {gain:+.3f} = {gain / gain_se if gain_se else 0:+.1f} se"
        )
        lines.append(
            "  per task: "
            + ", ".join(f"{t} {first[t]:.2f}->{last[t]:.2f}" for t in last if t != "macro")
        )
    if summary.get("final_local"):
        mean = summary["final_local"]["mean"]
        lines.append(
            f"  local models (mean over clients): macro {mean['global']['macro']:.3f}, "
            f"own task mix {mean['own-mix']:.3f}"
        )
    if summary["failures"]:
        lines.append(f"  client failures: {summary['failures']} (see metrics.jsonl)")
    if summary["rounds_aggregated"] < summary["rounds"]:
        lines.append(
            f"  rounds aggregated: {summary['rounds_aggregated']} of {summary['rounds']} "
            "(see 'reason' in metrics.jsonl)"
        )
    out_dir = as_typed(out_dir)
    lines.append(f"  results: {out_dir}  (metrics.jsonl, summary.json, final/adapter/)")
    lines.append(
        f"  plots:   {out_dir / 'plots' / 'accuracy.png'}, {out_dir / 'plots' / 'reward.png'}"
    )
    return "\n".join(lines)
