"""Where a sweep point's wall time goes, from its run directory (issue 12, part f's explanation).

    python benchmarks/point_breakdown.py SWEEP_DIR [SWEEP_DIR ...] [--md OUT.md]

Per federated point of each `fgrpo sweep` directory (sweep.json's wall seconds, the run's
summary.json and metrics.jsonl), in seconds:

- outside the run: the `fgrpo run` process before its first round and after its last (Python
  imports, checks, Ray's start or join, the round-0 evaluation or its cache, saving, exiting);
- GRPO: the clients' local training, (clients / workers) x the round's mean client
  ``train-seconds`` (each of the workers trains its share of the clients one after another),
  and within it the time in ``model.generate``;
- evaluation: what evaluated rounds take beyond the median non-evaluated round's overhead;
- worker start-up: what round 1 takes beyond that median overhead (the Ray workers import torch,
  transformers, TRL and Flower and load the model);
- the rest: aggregation, messages and the other rounds' overhead.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tomllib
from pathlib import Path

PARTS = ("wall", "outside the run", "GRPO", "of which generate", "evaluation", "worker start-up", "rest")


def breakdown(run: Path, wall: float) -> dict[str, float] | None:
    """``PARTS`` for one finished federated run; None for a centralized or unfinished one."""
    if not (run / "summary.json").is_file():
        return None
    cfg = tomllib.loads((run / "config.toml").read_text())
    if cfg["strategy"]["name"] == "centralized":
        return None
    clients, cpus = cfg["federation"]["num_clients"], cfg["federation"]["client_cpus"]
    workers = max(1, min(clients, int((os.cpu_count() or 1) // cpus)))
    summary = json.loads((run / "summary.json").read_text())
    rounds = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    share = clients / workers
    train = [share * r["train"]["train-seconds"] for r in rounds]
    overhead = [r["seconds"] - t for r, t in zip(rounds, train, strict=True)]
    quiet = [o for r, o in zip(rounds, overhead, strict=True) if r.get("eval") is None and r["round"] > 1]
    base = statistics.median(quiet) if quiet else 0.0
    evaluation = sum(o - base for r, o in zip(rounds, overhead, strict=True) if r.get("eval") is not None and r["round"] > 1)
    warmup = overhead[0] - base  # with eval.every = 1 this also holds round 1's evaluation
    out = {"wall": wall, "outside the run": wall - summary["seconds"], "GRPO": sum(train),
           "of which generate": sum(share * r["train"]["generate-seconds"] for r in rounds),
           "evaluation": evaluation, "worker start-up": warmup}
    out["rest"] = wall - out["outside the run"] - out["GRPO"] - evaluation - warmup
    return out


def sweep_points(directory: Path) -> list[dict[str, float]]:
    manifest = json.loads((directory / "sweep.json").read_text())
    found = [breakdown(directory / p["name"], p["seconds"]) for p in manifest["points"] if p.get("seconds")]
    return [b for b in found if b is not None]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sweeps", nargs="+", help="fgrpo sweep --out directories")
    parser.add_argument("--md", help="also write the table here")
    args = parser.parse_args(argv)
    lines = ["| sweep | points | " + " | ".join(PARTS) + " |", "| --- | --- |" + " --- |" * len(PARTS)]
    for directory in args.sweeps:
        points = sweep_points(Path(directory))
        if not points:
            continue
        means = [statistics.fmean(p[k] for p in points) for k in PARTS]
        lines.append(f"| {directory} | {len(points)} | " + " | ".join(f"{m:.1f}" for m in means) + " |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.md:
        Path(args.md).write_text(f"Mean seconds per federated point: `python benchmarks/point_breakdown.py "
                                 f"{' '.join(args.sweeps)}`\n\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
