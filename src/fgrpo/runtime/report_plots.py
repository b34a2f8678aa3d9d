"""The figures of `fgrpo report`: curves over rounds per panel, and FGRPO's client weights and
gains."""

from __future__ import annotations

import math
from pathlib import Path

from fgrpo.runtime.reports import band, plt, round_axis, save_figure
from fgrpo.runtime.sweep_runs import Run, band_text, curve, is_reference

MAX_PANELS = 16  # beyond this a figure is unreadable; report.md's tables still list every panel


def _axes(n: int, width: float = 4.2, height: float = 3.2) -> tuple[object, list[object]]:
    cols = min(n, 4)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    flat = [ax for row in axes for ax in row]
    for ax in flat[n:]:
        ax.set_visible(False)
    for ax in flat:
        round_axis(ax)
    return fig, flat[:n]


def plot_curves(
    out: Path, grouped: dict[str, dict[str, list[Run]]], series: str, ylabel: str
) -> Path:
    """One panel per grid value; one line per strategy with its band (sweep_runs.curve). The y-axis
    spans [0, 1]: a zoomed axis makes a change within the noise look like learning."""
    panels = list(grouped.items())[:MAX_PANELS]
    fig, axes = _axes(len(panels))
    for ax, (panel, by_strategy) in zip(axes, panels, strict=False):
        for strategy, runs in by_strategy.items():
            pts = curve(runs, series)
            if not pts:
                continue
            xs, means, sds = zip(*pts, strict=False)
            dashed = "--" if is_reference(strategy) else "-"
            (line,) = ax.plot(
                xs, means, dashed, marker=".", label=f"{strategy} (band {band_text(runs)})"
            )
            band(ax, list(xs), list(means), list(sds), line.get_color())
        ax.set(ylabel=ylabel, title=panel)
        ax.set_ylim(0, 1)  # accuracy and the range-normalised reward: the whole scale, never a zoom
        ax.legend(fontsize=7, loc="lower right")
    return save_figure(fig, out / f"{series}.png")


def logs_gains(run: Run) -> bool:
    """Whether the run's ledger carries each client's gain (FGRPO's rule does)."""
    return any(c.get("gain") is not None for r in run.rounds for c in r.get("clients", []))


def plot_fgrpo_clients(out: Path, grouped: dict[str, dict[str, list[Run]]]) -> Path | None:
    """Per panel, the first strategy that logs gains (FGRPO): its lowest seed's weight and gain of
    each client against round."""
    panels = [
        (panel, runs[0])
        for panel, by in grouped.items()
        for runs in [next((rs for rs in by.values() if logs_gains(rs[0])), None)]
        if runs
    ][:MAX_PANELS]
    if not panels:
        return None
    fig, axes = plt.subplots(len(panels), 2, figsize=(10, 3.2 * len(panels)), squeeze=False)
    for (ax_w, ax_g), (panel, run) in zip(axes, panels, strict=False):
        per_client: dict[str, list[tuple[int, float, float]]] = {}
        for r in run.rounds:
            for c in r.get("clients", []):
                per_client.setdefault(c["client-id"], []).append(
                    (r["round"], c["weight"], c.get("gain") or 0.0)
                )
        for cid, pts in sorted(per_client.items()):
            xs, weights, gains = zip(*pts, strict=False)
            ax_w.plot(xs, weights, marker=".", label=cid)
            ax_g.plot(xs, gains, marker=".", label=cid)
        for ax in (ax_w, ax_g):
            round_axis(ax)
        name = f"{run.strategy}: {panel} (seed {run.seed})"
        ax_w.set(ylabel="aggregation weight", title=f"weights, {name}")
        ax_g.set(ylabel="gain", title=f"gains, {name}")
        ax_w.legend(fontsize=7)
    return save_figure(fig, out / "fgrpo_clients.png")


def write_figures(out: Path, grouped: dict[str, dict[str, list[Run]]]) -> list[Path]:
    figures = [plot_curves(out, grouped, "macro", "macro accuracy (held-out)")]
    if any(
        curve(runs, "reward") for by_strategy in grouped.values() for runs in by_strategy.values()
    ):
        figures.append(
            plot_curves(out, grouped, "reward", "round reward (fraction of each task's range)")
        )
    clients = plot_fgrpo_clients(out, grouped)
    return figures + ([clients] if clients else [])
