"""LoRA aggregation modes against the default (average), paired by seed, from a finished sweep of
benchmarks/lora_modes.toml; writes DIR/lora_modes.{json,md} with the command, machine and date.

    .venv/bin/fgrpo sweep --config benchmarks/lora_modes.toml --out benchmarks/results/lora_modes
    .venv/bin/python benchmarks/lora_modes.py benchmarks/results/lora_modes
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench_common import provenance

from fgrpo.analysis.paired import paired_against
from fgrpo.runtime.sweep_runs import load_runs

KEY, BASELINE = "model.lora_aggregation", "average"


def wire_mb(runs, strategy: str, mode: str) -> float:
    """Mean MB each round puts on the wire (sent + received) over the mode's runs."""
    rounds = [
        r["bytes"]
        for run in runs
        if run.strategy == strategy and run.config["model"]["lora_aggregation"] == mode
        for r in run.rounds
        if "bytes" in r
    ]
    return sum(b["sent"] + b["received"] for b in rounds) / max(1, len(rounds)) / 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sweep", type=Path, help="the fgrpo sweep --out directory")
    args = parser.parse_args(argv)
    manifest, runs = load_runs(args.sweep)
    rows = paired_against(runs, KEY, BASELINE)
    for row in rows:
        row["wire_mb_per_round"] = wire_mb(runs, row["strategy"], row["value"])
        row["baseline_wire_mb_per_round"] = wire_mb(runs, row["strategy"], BASELINE)
    doc = {"rows": rows, "sweep": manifest.get("description"), **provenance("lora_modes.py", argv)}
    (args.sweep / "lora_modes.json").write_text(json.dumps(doc, indent=1) + "\n")
    lines = [
        "# LoRA aggregation modes against average, paired by seed",
        "",
        f"- command: `{doc['command']}`",
        f"- machine: {doc['machine']}",
        f"- date: {doc['date']}",
        f"- sweep: {doc['sweep']}",
        "",
        "Final macro accuracy (mean ± std over seeds) and the mode minus average, paired by seed "
        "(95% t-interval); MB on the wire per round, sent + received.",
        "",
        "| strategy | mode | pairs | mode final | average final | difference [95% CI] | MB/round "
        "(mode / average) |",
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
    (args.sweep / "lora_modes.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
