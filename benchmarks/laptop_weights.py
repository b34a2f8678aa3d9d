"""How far FGRPO's weights moved from FedAvg's in the laptop profile, from its committed run
directories.

Per round of every distinct FGRPO run under ``benchmarks/results/laptop/*/`` (a run whose resolved
config another slice already ran, e.g. the alpha slice's alpha 0.5 runs, counted once): the
total-variation distance between the weights used and FedAvg's n_k / sum n, and whether a client's
gain sat at the clip bound g_max. Writes ``--json`` with the command, machine and date.

    .venv/bin/python benchmarks/laptop_weights.py
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from statistics import median

from bench_common import provenance

from fgrpo.analysis.weights import tv_from_fedavg
from fgrpo.runtime.sweep_runs import load_runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--laptop", default="benchmarks/results/laptop")
    parser.add_argument("--json", default="benchmarks/results/laptop/fgrpo_weights.json")
    args = parser.parse_args(argv)
    seen: set[str] = set()
    tvs: list[float] = []
    saturated: list[str] = []
    for sweep in sorted(p.parent for p in Path(args.laptop).glob("*/sweep.json")):
        for run in load_runs(sweep)[1]:
            text = json.dumps(run.config, sort_keys=True)
            if run.strategy != "fgrpo" or text in seen:
                continue
            seen.add(text)
            g_max = run.config["strategy"]["g_max"]
            for record in run.rounds:
                tvs.append(tv_from_fedavg(record["clients"]))
                if any(
                    c["gain"] is not None and abs(c["gain"]) >= g_max for c in record["clients"]
                ):
                    saturated.append(f"{sweep.name}/{run.name} round {record['round']}")
    tvs.sort()
    result = {
        "runs": len(seen),
        "rounds": len(tvs),
        "tv_median": median(tvs),
        "tv_p90": tvs[int(0.9 * len(tvs))],
        "tv_max": tvs[-1],
        "rounds_tv_above_0.3": sum(tv > 0.3 for tv in tvs),
        "rounds_with_a_gain_at_g_max": len(saturated),
        "saturated": saturated,
        **provenance("laptop_weights.py", argv),
    }
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "saturated"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
