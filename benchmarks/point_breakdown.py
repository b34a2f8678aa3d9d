"""Where a sweep point's wall time goes, from its run directory (issue 12, part f's explanation).

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
import json
import math
import statistics
import sys
import tomllib
from pathlib import Path

PARTS = (
    "wall",
    "outside the run",
    "round 0 and saving",
    "GRPO",
    "of which generate",
    "evaluation",
    "worker start-up",
    "rest",
)


def breakdown(run: Path, wall: float, cpus: int) -> dict[str, float] | None:
    """``PARTS`` for one federated run finished in one go on a machine of ``cpus`` cores; None for
    a centralized, unfinished or resumed one (its metrics span sessions its wall time does not)."""
    resources = run / "resources.json"
    resumed = resources.is_file() and json.loads(resources.read_text()).get("attempt") == "resume"
    if not (run / "summary.json").is_file() or resumed:
        return None
    cfg = tomllib.loads((run / "config.toml").read_text())
    if cfg["strategy"]["name"] == "centralized":
        return None
    workers = max(1, int(cpus // cfg["federation"]["client_cpus"]))
    summary = json.loads((run / "summary.json").read_text())
    rounds = [
        json.loads(line)
        for line in (run / "metrics.jsonl").read_text().splitlines()
        if line.strip()
    ]
    share = [
        math.ceil(len(r["clients"]) / workers) for r in rounds
    ]  # each worker's clients, one after another
    train = [k * r["train"]["train-seconds"] for k, r in zip(share, rounds, strict=True)]
    overhead = [r["seconds"] - t for r, t in zip(rounds, train, strict=True)]
    quiet = [
        o for r, o in zip(rounds, overhead, strict=True) if r.get("eval") is None and r["round"] > 1
    ]
    base = statistics.median(quiet) if quiet else 0.0
    evaluation = sum(
        o - base
        for r, o in zip(rounds, overhead, strict=True)
        if r.get("eval") is not None and r["round"] > 1
    )
    warmup = overhead[0] - base  # with eval.every = 1 this also holds round 1's evaluation
    out = {
        "wall": wall,
        "outside the run": wall - summary["seconds"],
        # the run's clock starts with the server's model: its load, round-0 evaluation (or cache),
        # final save
        "round 0 and saving": summary["seconds"] - sum(r["seconds"] for r in rounds),
        "GRPO": sum(train),
        "of which generate": sum(
            k * r["train"]["generate-seconds"] for k, r in zip(share, rounds, strict=True)
        ),
        "evaluation": evaluation,
        "worker start-up": warmup,
    }
    out["rest"] = wall - sum(v for k, v in out.items() if k not in ("wall", "of which generate"))
    return out


def sweep_points(directory: Path) -> list[dict[str, float]]:
    manifest = json.loads((directory / "sweep.json").read_text())
    cpus = manifest["machine"]["cpus"]
    found = [
        breakdown(directory / p["name"], p["seconds"], cpus)
        for p in manifest["points"]
        if p.get("seconds")
    ]
    return [b for b in found if b is not None]


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
