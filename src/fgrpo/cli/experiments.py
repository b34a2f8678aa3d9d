"""``fgrpo sweep`` and ``fgrpo report``: a grid of runs, and the figures and tables across them."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fgrpo.core.errors import UserInputError


def cmd_sweep(args: argparse.Namespace) -> int:
    # deferred: torch, Flower and datasets load only when a command runs
    from fgrpo.runtime.grid import read_sweep
    from fgrpo.runtime.sweep import plan_text, preflight, run_sweep

    sweep = read_sweep(args.config, args.slice)
    out = Path(args.out)
    if args.dry_run:
        print(plan_text(sweep, preflight(sweep, out)))
        return 0
    return run_sweep(sweep, out, command=["fgrpo", *sys.argv[1:]])


def cmd_report(args: argparse.Namespace) -> int:
    # deferred: torch, Flower and datasets load only when a command runs
    from fgrpo.runtime.report import write_report
    from fgrpo.runtime.sweep_runs import write_compact

    directory = Path(args.dir)
    if not directory.is_dir():
        raise UserInputError(f"{directory}: no such sweep directory")
    if args.compact:
        print(f"compact runs: {write_compact(directory)}")
    path = write_report(directory, target=args.target, seeds=args.seeds)
    print(f"report: {path}")
    write_effects(directory, [Path(d) for d in args.with_dirs or []])
    return 0


def write_effects(directory: Path, others: list[Path]) -> None:
    """The sweep file's ``[effects]``, if any, on the runs of ``directory`` and ``others`` (other
    slices' directories): printed, and written as DIR/effects.json with command, machine, date."""
    # deferred: torch, Flower and datasets load only when a command runs
    from fgrpo.analysis.effects import compute_effects, effects_markdown
    from fgrpo.runtime.sweep_runs import load_runs

    manifest, runs = load_runs(directory)
    if not manifest.get("effects"):
        return
    for other in others:
        runs += load_runs(other)[1]
    effects = compute_effects(manifest["effects"], runs)
    record = {
        "effects": effects,
        "command": " ".join(
            ["fgrpo report", str(directory), *(["--with"] if others else [])]
            + [str(o) for o in others]
        ),
        "machine": manifest["machine"],
        "date": manifest.get("updated", manifest["started"]),
    }
    (directory / "effects.json").write_text(json.dumps(record, indent=2) + "\n")
    print("\n".join(effects_markdown(effects)))
    print(f"effects: {directory / 'effects.json'}")


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``sweep`` and ``report`` to the ``fgrpo`` parser."""
    sweep = sub.add_parser("sweep", help="run every point of a grid over config keys (resumable)")
    sweep.add_argument("--config", required=True, help="sweep file (benchmarks/quick.toml)")
    sweep.add_argument(
        "--out", required=True, help="sweep directory: one run directory per point, sweep.json"
    )
    sweep.add_argument("--slice", help="run only this named slice of the sweep file")
    sweep.add_argument(
        "--dry-run",
        action="store_true",
        help="expand and validate the grid, print the plan, run nothing",
    )
    sweep.set_defaults(func=cmd_sweep)
    report = sub.add_parser("report", help="figures and a markdown summary of a sweep directory")
    report.add_argument("dir", help="the directory `fgrpo sweep --out` wrote")
    report.add_argument(
        "--target",
        type=float,
        help="macro accuracy for 'rounds to target' "
        "(default: the runs' mean starting accuracy + 0.05)",
    )
    report.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        metavar="SEED",
        help="report only these seeds' runs, into DIR/report-seeds-SEED... (e.g. one seed's view)",
    )
    report.add_argument(
        "--compact",
        action="store_true",
        help="also write DIR/runs.jsonl: every finished run in one file, from which the report "
        "is rebuilt once the run directories are deleted",
    )
    report.add_argument(
        "--with",
        dest="with_dirs",
        nargs="+",
        metavar="DIR",
        help="other sweep directories (the profile's other slices) whose runs the sweep file's "
        "[effects] also compare",
    )
    report.set_defaults(func=cmd_report)
