"""`fgrpo report DIR`: DIR/report/report.md and its figures, the seeds of each group pooled.

Points without a summary.json (not finished) are listed as unfinished, not tabulated.
"""

from __future__ import annotations

from pathlib import Path
from statistics import fmean
from typing import Any

from fgrpo.core.errors import UserInputError
from fgrpo.runtime.report_plots import write_figures
from fgrpo.runtime.stats import mean_std, paired_interval
from fgrpo.runtime.sweep_runs import BASELINE, Run, groups, is_reference, load_runs


def _pm(values: list[float]) -> str:
    """Mean ± the seeds' spread; one seed has no spread to show (not "± 0.000")."""
    mean, sd = mean_std(values)
    return f"{mean:.3f} ± {sd:.3f}" if len(values) > 1 else f"{mean:.3f} ± n/a (1 seed)"


def strategy_row(strategy: str, runs: list[Run], target: float | None) -> list[str]:
    """Label, seeds, final / best / worst-task macro (mean ± std), rounds to ``target`` (left out
    when None: a model with no fixed target), then each task's final accuracy."""
    finals = [r.summary["final_eval"] for r in runs]
    tasks = [t for t in finals[0] if t != "macro"]
    label = strategy + (" (reference)" if is_reference(strategy) else "")
    row = [
        label,
        str(len(runs)),
        _pm([f["macro"] for f in finals]),
        _pm([r.summary["best_macro"] for r in runs]),
        _pm([min(f[t] for t in tasks) for f in finals]),
    ]
    if target is not None:
        reached = [n for n in (r.rounds_to(target) for r in runs) if n is not None]
        row.append(
            f"{fmean(reached):.1f} ({len(reached)}/{len(runs)})"
            if reached
            else f"- (0/{len(runs)})"
        )
    return [*row, *(f"{fmean(f[t] for f in finals):.3f}" for t in tasks)]


Pairs = list[tuple[float, float]]


def minus_baseline(
    by_strategy: dict[str, list[Run]],
) -> dict[str, tuple[Pairs, tuple[float, float, float] | None]]:
    """Per strategy other than FedAvg: (its final macro, FedAvg's) for each seed both have, and
    their paired difference with its 95% interval (None below 2 pairs); empty without FedAvg."""
    if BASELINE not in by_strategy:
        return {}
    base = {r.seed: r.summary["final_eval"]["macro"] for r in by_strategy[BASELINE]}
    out = {}
    for strategy, runs in by_strategy.items():
        if strategy == BASELINE:
            continue
        pairs = [(r.summary["final_eval"]["macro"], base[r.seed]) for r in runs if r.seed in base]
        interval = paired_interval([a for a, _ in pairs], [b for _, b in pairs]) if pairs else None
        out[strategy] = (pairs, interval)
    return out


def paired_rows(by_strategy: dict[str, list[Run]]) -> list[list[str]]:
    """Each strategy's final macro accuracy minus FedAvg's, over the seeds both have."""
    rows = []
    for strategy, (pairs, result) in minus_baseline(by_strategy).items():
        if result is None:
            diff = f"{pairs[0][0] - pairs[0][1]:+.3f}" if pairs else "-"
            rows.append([strategy, str(len(pairs)), diff, "needs ≥ 2 seeds"])
        else:
            mean, low, high = result
            rows.append([strategy, str(len(pairs)), f"{mean:+.3f}", f"[{low:+.3f}, {high:+.3f}]"])
    return rows


def md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(r) + " |" for r in rows),
    ]


def resource_rows(runs: list[Run]) -> list[list[str]]:
    def cell(res: dict[str, Any], key: str) -> str:
        return "-" if res.get(key) is None else f"{res[key]:g}"

    keys = (
        "wall_seconds",
        "cpu_percent_mean",
        "peak_rss_mb",
        "gpu_util_percent_mean",
        "gpu_memory_peak_mb",
    )
    return [
        [r.name, f"{r.summary['seconds']:g}", *(cell(r.resources, k) for k in keys)]
        for r in sorted(runs, key=lambda r: r.name)
    ]


def wire_section(runs: list[Run]) -> list[str]:
    """Mean bytes on the wire per round (the arrays each way), per strategy and panel; nothing for
    runs logged before rounds recorded them."""
    rows = []
    for panel, by_strategy in groups(runs).items():
        for strategy, group in by_strategy.items():
            rounds = [r["bytes"] for run in group for r in run.rounds if "bytes" in r]
            if rounds:
                sent = fmean(b["sent"] for b in rounds) / 1e6
                received = fmean(b["received"] for b in rounds) / 1e6
                rows.append([panel, strategy, f"{sent:.3f}", f"{received:.3f}"])
    if not rows:
        return []
    header = ["panel", "strategy", "MB sent per round", "MB received per round"]
    return ["", "## Bytes on the wire", "", *md_table(header, rows)]


def default_target(runs: list[Run]) -> float:
    """The runs' mean starting macro accuracy + 0.05."""
    starts = [r.macro[0][1] for r in runs if r.macro and r.macro[0][0] == 0]
    return round((fmean(starts) if starts else 0.0) + 0.05, 3)


def report_markdown(
    manifest: dict[str, Any], runs: list[Run], target: float, figures: list[Path]
) -> str:
    points = manifest["points"]
    lines = [
        f"# Sweep report: {manifest['sweep']}"
        + (f" (slice {manifest['slice']})" if manifest.get("slice") else ""),
        "",
    ]
    if manifest.get("description"):
        lines += [manifest["description"], ""]
    if manifest.get("command"):
        lines += [f"Command: `{' '.join(manifest['command'])}`", ""]
    if manifest.get("machine"):
        m = manifest["machine"]
        lines += [
            f"Machine: {m['platform']}, {m['cpus']} CPUs, {'a' if m['gpu'] else 'no'} GPU; "
            f"sweep started {manifest.get('started')}, last updated {manifest.get('updated')} (UTC).",
            "",
        ]
    lines += [
        f"{len(runs)} of {len(points)} points finished; mean ± std over seeds (sample std). "
        f"Target for 'rounds to target': macro accuracy {target:.3f}.",
        "",
    ]
    lines += [f"![{f.stem}]({f.name})" for f in figures] + [""]
    for panel, by_strategy in groups(runs).items():
        tasks = [
            t for t in next(iter(by_strategy.values()))[0].summary["final_eval"] if t != "macro"
        ]
        lines += [f"## {panel}", ""]
        lines += md_table(
            [
                "strategy",
                "seeds",
                "final macro",
                "best macro",
                "worst task (final)",
                "rounds to target",
                *tasks,
            ],
            [strategy_row(s, rs, target) for s, rs in by_strategy.items()],
        )
        paired = paired_rows(by_strategy)
        if paired:
            lines += [
                "",
                f"Final macro accuracy minus {BASELINE}'s, paired by seed (95% t-interval):",
                "",
            ]
            lines += md_table(["strategy", "pairs", "mean difference", "95% interval"], paired)
        lines.append("")
    lines += [
        "## Resources per run",
        "",
        "Run seconds: summary.json's; wall seconds: the whole process, "
        "start-up included (of its last attempt). CPU % is of one core (200 = two cores busy); GPU columns only where "
        "nvidia-smi exists (whole-device numbers).",
        "",
    ]
    header = [
        "run",
        "run seconds",
        "wall seconds",
        "mean CPU %",
        "peak RSS MB",
        "GPU util %",
        "GPU peak MB",
    ]
    lines += md_table(header, resource_rows(runs))
    lines += wire_section(runs)
    unfinished = [p for p in points if p.get("status") != "done"]
    if unfinished:
        lines += ["", "## Unfinished points", ""]
        lines += [
            f"- {p['name']}: {p.get('status')}" + (f" ({p['error']})" if p.get("error") else "")
            for p in unfinished
        ]
    return "\n".join(lines) + "\n"


def write_report(
    directory: Path, target: float | None = None, seeds: list[int] | None = None
) -> Path:
    """DIR/report/report.md and its PNG figures (``seeds``: only those seeds' runs, in
    DIR/report-seeds-...); returns the markdown's path."""
    manifest, runs = load_runs(directory)
    if seeds is not None:
        runs = [r for r in runs if r.seed in seeds]
        manifest = {
            **manifest,
            "points": [p for p in manifest["points"] if p["name"] in {r.name for r in runs}],
        }
    if not runs:
        raise UserInputError(
            f"{directory}: no finished point (no summary.json) to report on"
            + (f" for seed(s) {', '.join(map(str, seeds))}" if seeds is not None else " yet")
        )
    target = default_target(runs) if target is None else target
    out = directory / (
        "report" if seeds is None else "report-seeds-" + "-".join(map(str, sorted(seeds)))
    )
    out.mkdir(exist_ok=True)
    figures = write_figures(out, groups(runs))
    path = out / "report.md"
    path.write_text(report_markdown(manifest, runs, target, figures))
    return path
