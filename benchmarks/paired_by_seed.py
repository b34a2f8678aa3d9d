"""A config key's values against its default, paired by seed, from a finished sweep: the LoRA
aggregation modes of benchmarks/lora_modes.toml against average, or the optimizer states of
benchmarks/optimizer_state.toml against reset. Writes DIR/paired.{json,md} with the command, machine
and date.

    .venv/bin/fgrpo sweep --config benchmarks/lora_modes.toml --out benchmarks/results/lora_modes
    .venv/bin/python benchmarks/paired_by_seed.py benchmarks/results/lora_modes
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench_common import provenance

from fgrpo.analysis.paired import config_value, paired_against
from fgrpo.runtime.sweep_runs import load_runs


def wire_mb(runs, strategy: str, key: str, value) -> float:
    """Mean MB each round puts on the wire (sent + received) over the runs with ``key = value``."""
    rounds = [
        r["bytes"]
        for run in runs
        if run.strategy == strategy and config_value(run, key) == value
        for r in run.rounds
        if "bytes" in r
    ]
    return sum(b["sent"] + b["received"] for b in rounds) / max(1, len(rounds)) / 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "sweeps", type=Path, nargs="+", help="fgrpo sweep --out directories (results: the first)"
    )
    parser.add_argument("--key", default="model.lora_aggregation", help="the compared config key")
    parser.add_argument("--baseline", default="average", help="the value the others are against")
    parser.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="only runs with this value (e.g. model.lora_aggregation=average), repeatable",
    )
    args = parser.parse_args(argv)
    out = args.sweeps[0]  # the results go beside the first sweep
    manifest = load_runs(out)[0]
    runs = [run for sweep in args.sweeps for run in load_runs(sweep)[1]]
    for condition in args.where:
        key, value = condition.split("=", 1)
        runs = [run for run in runs if str(config_value(run, key)) == value]
    rows = paired_against(runs, args.key, args.baseline)
    for row in rows:
        row["wire_mb_per_round"] = wire_mb(runs, row["strategy"], args.key, row["value"])
        row["baseline_wire_mb_per_round"] = wire_mb(runs, row["strategy"], args.key, args.baseline)
    doc = {
        "rows": rows,
        "sweep": manifest.get("description"),
        **provenance("paired_by_seed.py", argv),
    }
    (out / "paired.json").write_text(json.dumps(doc, indent=1) + "\n")
    lines = [
        f"# {args.key}: each value against {args.baseline}, paired by seed",
        "",
        f"- command: `{doc['command']}`",
        f"- machine: {doc['machine']}",
        f"- date: {doc['date']}",
        f"- sweep: {doc['sweep']}",
        "",
        f"Final macro accuracy (mean ± std over seeds) and the value minus {args.baseline}, paired "
        "by seed "
        "(95% t-interval); MB on the wire per round, sent + received.",
        "",
        f"| strategy | value | pairs | final | {args.baseline} final | difference [95% CI] | "
        f"MB/round (value / {args.baseline}) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        interval = (
            f"{r['difference']:+.3f} [{r['interval'][0]:+.3f}, {r['interval'][1]:+.3f}]"
            if r["interval"]
            else "needs ≥ 2 seeds"
        )
        lines.append(
            f"| {r['strategy']} | {r['value']} | {r['pairs']} | {r['final'][0]:.3f} ± "
            f"{r['final'][1]:.3f} | {r['baseline_final'][0]:.3f} ± {r['baseline_final'][1]:.3f} | "
            f"{interval} | {r['wire_mb_per_round']:.3f} / {r['baseline_wire_mb_per_round']:.3f} |"
        )
    (out / "paired.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
