"""``fgrpo tasks`` and ``fgrpo data describe``: what the run will train on, before it runs."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from fgrpo.core.config import Config


def tasks_table(cfg: Config | None = None) -> str:
    """Every procedural task (native and configured reward range), checker and data source."""
    # deferred: torch, Flower and datasets load only when a command runs
    from fgrpo.tasks.math_datasets import CHECKERS
    from fgrpo.tasks.registry import TASKS
    from fgrpo.tasks.rewards import scaled_range

    scales = cfg.data.reward_scale if cfg else {}
    active = set(cfg.data.tasks) if cfg else set(TASKS)
    rows = [("task", "reward range", "in this run", "description")]
    for name, task in TASKS.items():
        low, high = task.reward_range
        if name in active:
            s_low, s_high = scaled_range(name, scales)
            configured = f"[{s_low:g}, {s_high:g}]"
        else:
            configured = "-"
        rows.append((name, f"[{low:g}, {high:g}]", configured, task.description))
    lines = _columns(rows)
    lines += ["", "gold checks for data sources (checker = ...):"]
    lines += _columns(
        [("checker", "reward range", "description")]
        + [
            (c.name, f"[{c.reward_range[0]:g}, {c.reward_range[1]:g}]", c.description)
            for c in CHECKERS.values()
        ]
    )
    if cfg and cfg.data.sources:
        lines += ["", "data sources in this config:"]
        src_rows = [("source", "data", "checker", "rewards")]
        for s in cfg.data.sources:
            scale = cfg.data.reward_scale.get(s.name, 1.0)
            rewards = ", ".join(s.rewards) or f"{s.checker} accuracy [0, {scale:g}]"
            if s.rewards and scale != 1.0:
                rewards += f" (x{scale:g})"
            src_rows.append((s.name, s.path or f"hub:{s.hub}", s.checker, rewards))
        lines += _columns(src_rows)
    if cfg and cfg.data.format_reward > 0:
        lines += [
            "",
            f"format reward: +{cfg.data.format_reward:g} for exactly one <answer> tag (every task)",
        ]
    return "\n".join(lines)


def _columns(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)).rstrip()
        for row in rows
    ]


def describe_partitions(cfg: Config) -> tuple[str, list[str], list[dict[str, int]]]:
    """(printable per-client table, task labels, counts per client)."""
    # deferred: torch, Flower and datasets load only when a command runs
    from fgrpo.data.partitions import task_counts, task_names

    names = task_names(cfg)
    counts = task_counts(cfg)
    d = cfg.data
    knob = {
        "dirichlet": f" alpha={d.alpha:g}",
        "pathological": f" tasks_per_client={d.tasks_per_client}",
    }
    header = (
        f"partition: {d.partition}{knob.get(d.partition, '')} | clients: {cfg.federation.num_clients} | "
        f"seed: {cfg.seed} | prompts: {sum(sum(c.values()) for c in counts)}"
    )
    rows = [("client", *names, "total", "tasks")]
    for pid, per_task in enumerate(counts):
        present = sum(1 for v in per_task.values() if v)
        rows.append(
            (
                str(pid),
                *(str(per_task[n]) for n in names),
                str(sum(per_task.values())),
                str(present),
            )
        )
    rows.append(
        (
            "total",
            *(str(sum(c[n] for c in counts)) for n in names),
            str(sum(sum(c.values()) for c in counts)),
            "",
        )
    )
    table = [header, ""]
    # deferred: torch, Flower and datasets load only when a command runs
    from fgrpo.data.partitions import _partitioner_for

    unassigned = len(_partitioner_for(cfg.to_json()).dataset) - sum(sum(c.values()) for c in counts)
    if unassigned > 0:
        table = [header, f"note: {unassigned} prompts reach no client under this partition", ""]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    table += [
        "  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=False)) for row in rows
    ]
    return "\n".join(table), names, counts


def save_heatmap(path: Path, cfg: Config, names: list[str], counts: list[dict[str, int]]) -> None:
    # deferred: torch, Flower and datasets load only when a command runs
    import numpy as np

    from fgrpo.runtime.reports import plt, save_figure

    grid = np.array([[c[n] for n in names] for c in counts])
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * len(names), 1.0 + 0.45 * len(counts)))
    image = ax.imshow(grid, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_yticks(range(len(counts)), [f"client {i}" for i in range(len(counts))])
    for (i, j), value in np.ndenumerate(grid):
        ax.text(
            j,
            i,
            str(value),
            ha="center",
            va="center",
            color="w" if value < grid.max() / 2 else "k",
            fontsize=8,
        )
    d = cfg.data
    title = d.partition + (f" (alpha={d.alpha:g})" if d.partition == "dirichlet" else "")
    ax.set_title(f"prompts per client and task: {title}")
    fig.colorbar(image, ax=ax, label="prompts")
    path.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, path, dpi=120)


def cmd_tasks(args: argparse.Namespace) -> int:
    # deferred: torch, Flower and datasets load only when a command runs
    from fgrpo.runtime.configs import load_config

    cfg = load_config(args.config, args.overrides) if (args.config or args.overrides) else None
    print(tasks_table(cfg))
    return 0


def cmd_data_describe(args: argparse.Namespace) -> int:
    # deferred: torch, Flower and datasets load only when a command runs
    from fgrpo.runtime.configs import load_config

    cfg = load_config(args.config, args.overrides)
    text, names, counts = describe_partitions(cfg)
    print(text)
    if args.heatmap:
        save_heatmap(Path(args.heatmap), cfg, names, counts)
        print(f"\nheatmap: {args.heatmap}")
    return 0


def register(
    sub: argparse._SubParsersAction, add_config_args: Callable[[argparse.ArgumentParser], None]
) -> None:
    """Add ``tasks`` and ``data describe`` to the ``fgrpo`` parser."""
    tasks = sub.add_parser("tasks", help="list the verifiable tasks and their reward ranges")
    add_config_args(tasks)
    tasks.set_defaults(func=cmd_tasks)
    data = sub.add_parser("data", help="inspect the data a run will use")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    describe = data_sub.add_parser(
        "describe", help="per-client table of task counts (and a heatmap)"
    )
    add_config_args(describe)
    describe.add_argument("--heatmap", metavar="PNG", help="also save the table as a heatmap image")
    describe.set_defaults(func=cmd_data_describe)
