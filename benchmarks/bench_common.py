"""What the benchmark scripts share: run ``fgrpo run`` as a user would, read its curve, say where
and when."""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def provenance(script: str, argv: list[str] | None) -> dict[str, str]:
    """command, machine and date for a result file."""
    import torch

    gpu = f"GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else "no GPU"
    return {
        "command": f"python benchmarks/{script} "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": f"{platform.machine()} CPU, {os.cpu_count()} cores, {gpu}, torch {torch.__version__} "
        "(shared VM: other jobs may have run)",
        "date": datetime.date.today().isoformat(),
    }


def curve(run_dir: Path) -> list[dict[str, float]]:
    """(round, macro, se) of every evaluated round, round 0 included."""
    summary = json.loads((run_dir / "summary.json").read_text())
    points = [
        {
            "round": 0,
            "macro": summary["initial_eval"]["macro"],
            "se": summary["initial_eval_se"]["macro"],
        }
    ]
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record.get("eval"):
            points.append(
                {
                    "round": record["round"],
                    "macro": record["eval"]["macro"],
                    "se": record["eval_se"]["macro"],
                }
            )
    return points


def run_fgrpo(config: Path, out: Path, overrides: list[str]) -> dict:
    """One ``fgrpo run`` in a subprocess; start / best / final macro accuracy, se, seconds,
    curve."""
    command = [
        sys.executable,
        "-m",
        "fgrpo",
        "run",
        "--config",
        str(config),
        "--out",
        str(out),
        "--overwrite",
    ]
    for item in overrides:
        command += ["--set", item]
    started = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    seconds = time.perf_counter() - started
    points = curve(out)
    best = max(points[1:], key=lambda p: p["macro"])
    final = points[-1]
    return {
        "start": points[0]["macro"],
        "best": best["macro"],
        "best_round": best["round"],
        "final": final["macro"],
        "se": final["se"],
        "seconds": round(seconds, 1),
        "curve": points,
        "final_eval": json.loads((out / "summary.json").read_text())["final_eval"],
    }
