"""Plots and the human summary of one run, from its metrics.jsonl."""

from __future__ import annotations

from pathlib import Path
from statistics import fmean
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402


def accuracy_series(initial_eval: dict[str, float] | None, rounds: list[dict[str, Any]]) -> dict[str, list[tuple[int, float]]]:
    series: dict[str, list[tuple[int, float]]] = {}
    points = ([(0, initial_eval)] if initial_eval else []) + [(r["round"], r["eval"]) for r in rounds if r.get("eval")]
    for rnd, scores in points:
        for task, acc in scores.items():
            series.setdefault(task, []).append((rnd, acc))
    return series


def plot_accuracy(out: Path, initial_eval: dict[str, float] | None, rounds: list[dict[str, Any]]) -> Path:
    fig, ax = plt.subplots(figsize=(6, 4))
    for task, pts in accuracy_series(initial_eval, rounds).items():
        xs, ys = zip(*pts)
        ax.plot(xs, ys, marker="o", lw=2.5 if task == "macro" else 1.2, label=task, color="black" if task == "macro" else None)
    ax.set(xlabel="round", ylabel="greedy accuracy (held-out)", title="Accuracy per task", ylim=(-0.02, 1.02))
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = out / "accuracy.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_reward(out: Path, rounds: list[dict[str, Any]]) -> Path:
    fig, (ax_r, ax_w) = plt.subplots(1, 2, figsize=(10, 4))
    per_client: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for r in rounds:
        for c in r["clients"]:
            per_client.setdefault(c["client-id"], []).append((r["round"], c))
    for cid, pts in sorted(per_client.items()):
        xs = [p[0] for p in pts]
        ax_r.plot(xs, [p[1]["reward"] for p in pts], marker=".", label=cid)
        ax_w.plot(xs, [p[1]["weight"] for p in pts], marker=".", label=cid)
    ax_r.set(xlabel="round", ylabel="mean rollout reward (raw scale)", title="Client reward")
    ax_w.set(xlabel="round", ylabel="aggregation weight", title="Client weight")
    ax_w.legend(fontsize=7)
    fig.tight_layout()
    path = out / "reward.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_plots(out_dir: Path, initial_eval: dict[str, float] | None, rounds: list[dict[str, Any]]) -> list[Path]:
    plots = out_dir / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    return [plot_accuracy(plots, initial_eval, rounds), plot_reward(plots, rounds)]


def summarise(cfg_name: str, initial_eval: dict[str, float] | None, rounds: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    evals = [r for r in rounds if r.get("eval")]
    final_eval = evals[-1]["eval"] if evals else None
    return {
        "strategy": cfg_name,
        "rounds": len(rounds),
        "seconds": round(seconds, 1),
        "initial_eval": initial_eval,
        "final_eval": final_eval,
        "macro_gain": (final_eval["macro"] - initial_eval["macro"]) if final_eval and initial_eval else None,
        "mean_client_reward_by_round": [
            fmean(c["reward"] for c in r["clients"]) if r["clients"] else None for r in rounds
        ],
        "failures": sum(len(r.get("failures", [])) for r in rounds),
    }


def summary_text(summary: dict[str, Any], out_dir: Path) -> str:
    lines = [f"fgrpo: {summary['rounds']} rounds of {summary['strategy']} in {summary['seconds']}s"]
    if summary["initial_eval"] and summary["final_eval"]:
        first, last = summary["initial_eval"], summary["final_eval"]
        lines.append(f"  macro accuracy: {first['macro']:.3f} (round 0) -> {last['macro']:.3f} (final)")
        lines.append("  per task: " + ", ".join(f"{t} {first[t]:.2f}->{last[t]:.2f}" for t in last if t != "macro"))
    if summary["failures"]:
        lines.append(f"  client failures: {summary['failures']} (see metrics.jsonl)")
    lines.append(f"  results: {out_dir}  (metrics.jsonl, summary.json, final/adapter/)")
    lines.append(f"  plots:   {out_dir / 'plots' / 'accuracy.png'}, {out_dir / 'plots' / 'reward.png'}")
    return "\n".join(lines)
