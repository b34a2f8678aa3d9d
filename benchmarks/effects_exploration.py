"""The first exploration toward a testbed where federated effects show: effects 1-4 of the testbed
issue as paired differences over seeds, from the exploration's sweeps (all-linear LoRA, lr 1e-3,
4 clients x 8 rounds x 10 local steps = 320 GRPO steps, the five default tasks, 500 test prompts
per task). Writes DIR/effects.{json,md} with the command, machine and date.

    fgrpo sweep --config benchmarks/results/effects/exploration/D_fed.toml --slice central --out C
    fgrpo sweep --config benchmarks/results/effects/exploration/D_fed.toml --slice fed --out F
    python benchmarks/effects_exploration.py benchmarks/results/effects/exploration C F [...]

"Collaboration pays" was fixed before its runs as FedAvg with server_lr 4 (= the number of
clients) against local-only at Dirichlet 0.1; plain FedAvg against local-only is reported beside it
as what it is, a comparison chosen after the first seed. (These sweeps predate ``[effects]`` in sweep
files, hence the selections here; a profile declares its effects there and `fgrpo report` computes
them with the same fgrpo.analysis.effects.)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench_common import provenance

from fgrpo.analysis.effects import difference, effects_markdown, select, task_gains
from fgrpo.runtime.sweep_runs import load_runs

CENTRALIZED = {"strategy.name": "centralized"}
FEDAVG_IID = {"strategy.name": "fedavg", "strategy.server_lr": 1.0, "data.partition": "iid"}
FEDAVG_SKEWED = {
    "strategy.name": "fedavg",
    "strategy.server_lr": 1.0,
    "data.partition": "dirichlet",
}
FEDAVG_SLR4_SKEWED = {**FEDAVG_SKEWED, "strategy.server_lr": 4.0}
LOCAL_SKEWED = {"strategy.name": "local-only", "data.partition": "dirichlet"}
PAIRS = {  # name: (better, worse)
    "2 centralized beats FedAvg at alpha 0.1": (CENTRALIZED, FEDAVG_SKEWED),
    "2 centralized beats FedAvg IID": (CENTRALIZED, FEDAVG_IID),
    "3 heterogeneity costs (FedAvg IID - alpha 0.1)": (FEDAVG_IID, FEDAVG_SKEWED),
    "4 collaboration pays (pre-registered: FedAvg server_lr 4 - local-only, alpha 0.1)": (
        FEDAVG_SLR4_SKEWED,
        LOCAL_SKEWED,
    ),
    "4' FedAvg server_lr 1 - local-only, alpha 0.1 (chosen after seed 0)": (
        FEDAVG_SKEWED,
        LOCAL_SKEWED,
    ),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path, help="where effects.{json,md} go")
    parser.add_argument("sweeps", type=Path, nargs="+", help="fgrpo sweep --out directories")
    args = parser.parse_args(argv)
    runs = [run for sweep in args.sweeps for run in load_runs(sweep)[1]]
    effects = {
        f"1 every task learns: {task}": gain
        for task, gain in task_gains(select(runs, CENTRALIZED)).items()
    }
    for name, (better, worse) in PAIRS.items():
        effects[name] = difference(select(runs, better), select(runs, worse))
    record = {"effects": effects, **provenance("effects_exploration.py", argv)}
    (args.out / "effects.json").write_text(json.dumps(record, indent=2) + "\n")
    lines = [
        "# Effects on the exploration recipe (paired by seed, 95% t-intervals)",
        "",
        f"Command: `{record['command']}`; machine: {record['machine']}; date: {record['date']}.",
        "",
        *effects_markdown(effects),
    ]
    (args.out / "effects.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
