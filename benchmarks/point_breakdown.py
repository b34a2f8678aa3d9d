"""Where a sweep point's wall time goes, from its run directory (what part f of benchmarks/perf.py measures).

    python benchmarks/point_breakdown.py SWEEP_DIR [SWEEP_DIR ...] [--md OUT.md]

Per federated point of each `fgrpo sweep` directory (sweep.json's wall seconds, the run's
summary.json and metrics.jsonl), in seconds:

- outside the run: the `fgrpo run` process before the server loads its model and after the run
  (Python imports, checks, Ray's start or join, exiting);
- round 0 and saving: the run's clock outside its rounds (the server's model load, the round-0
  evaluation or its cache, the final save);
- GRPO: the clients' local training, ceil(clients / workers) x the round's mean client
  ``train-seconds`` (each of the workers trains its share of the round's clients one after
  another; workers = the sweep machine's cores / client_cpus), and within it the time in
  ``model.generate``;
- evaluation: what evaluated rounds take beyond the median non-evaluated round's overhead;
- worker start-up: what round 1 takes beyond that median overhead (the Ray workers import torch,
  transformers, TRL and Flower and load the model);
- the rest: aggregation, messages and the other rounds' overhead.

Resumed points are left out: their metrics span sessions their wall time does not.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from fgrpo.analysis.point_breakdown import PARTS, sweep_points


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sweeps", nargs="+", help="fgrpo sweep --out directories")
    parser.add_argument("--md", help="also write the table here")
    args = parser.parse_args(argv)
    lines = [
        "| sweep | points | " + " | ".join(PARTS) + " |",
        "| --- | --- |" + " --- |" * len(PARTS),
    ]
    for directory in args.sweeps:
        points = sweep_points(Path(directory))
        if not points:
            continue
        means = [statistics.fmean(p[k] for p in points) for k in PARTS]
        lines.append(
            f"| {directory} | {len(points)} | " + " | ".join(f"{m:.1f}" for m in means) + " |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.md:
        Path(args.md).write_text(
            f"Mean seconds per federated point: `python benchmarks/point_breakdown.py "
            f"{' '.join(args.sweeps)}`\n\n" + text
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
