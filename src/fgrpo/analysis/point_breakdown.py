"""Where a sweep point's wall time goes (benchmarks/point_breakdown.py says how each part is
measured)."""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

from fgrpo.runtime.sweep_runs import read_manifest, run_records
from fgrpo.server.strategies import strategy_entry

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


def breakdown(run: dict[str, Any], wall: float, cpus: int) -> dict[str, float] | None:
    """``PARTS`` for one federated run (its record: fgrpo.runtime.sweep_runs.run_record) finished in
    one go on a machine of ``cpus`` cores; None for one that trains without Flower, or a resumed
    one (its metrics span sessions its wall time does not)."""
    if run["resources"].get("attempt") == "resume":
        return None
    cfg, summary, rounds = run["config"], run["summary"], run["rounds"]
    if not strategy_entry(cfg["strategy"]["name"]).in_flower:
        return None
    workers = max(1, int(cpus // cfg["federation"]["client_cpus"]))
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
    """Each finished point's breakdown, from its run directory or the sweep's runs.jsonl."""
    manifest, records = read_manifest(directory), run_records(directory)
    cpus = manifest["machine"]["cpus"]
    found = [
        breakdown(records[p["name"]], p["seconds"], cpus)
        for p in manifest["points"]
        if p.get("seconds") and p["name"] in records
    ]
    return [b for b in found if b is not None]
