"""The paper's claim on a real model, with seeds: benchmarks/real_model.toml's seed slices
(SmolLM2-135M-Instruct; FedAvg, FGRPO, FedProx, local-only, centralized; 2 and 4 clients; 3 seeds)
gathered into one result: per setting, each strategy's final macro and per-task accuracy (mean ±
std over seeds), every strategy minus FedAvg paired by seed with its 95% t-interval (FGRPO − FedAvg
the headline), and the macro curves with their bands.

    fgrpo sweep --config benchmarks/real_model.toml --slice two-clients --out DIR2
    fgrpo sweep --config benchmarks/real_model.toml --slice four-clients --out DIR4
    .venv/bin/python benchmarks/real_model_seeds.py DIR2 DIR4

Writes benchmarks/results/real_model_seeds.{json,md,png} (``--out`` another stem) with the command,
machine and date; a slice still running contributes the seeds it has finished.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from statistics import fmean

from bench_common import RESULTS, provenance

from fgrpo.analysis.paired import against_fedavg, config_value
from fgrpo.core.errors import UserInputError
from fgrpo.runtime.report import md_table, paired_rows, strategy_row
from fgrpo.runtime.report_plots import plot_curves
from fgrpo.runtime.sweep_runs import Run, groups, load_runs


def by_setting(runs: list[Run]) -> dict[str, dict[str, list[Run]]]:
    """Runs by setting ("2 clients", "4 clients"), then strategy, one per seed."""
    for run in runs:
        run.panel = f"{config_value(run, 'federation.num_clients')} clients"
    return dict(sorted(groups(runs).items()))


def markdown(settings: dict[str, dict[str, list[Run]]], prov: dict[str, str]) -> list[str]:
    lines = [
        "# FGRPO against FedAvg on SmolLM2-135M-Instruct, with seeds (benchmarks/real_model.toml)",
        "",
        *(f"- {k}: {v}" for k, v in prov.items()),
        "",
        "Final greedy accuracy on 200 held-out prompts per task after 4 rounds x 3 local GRPO "
        "steps; mean ± std over seeds. Paired rows: each strategy's final macro minus FedAvg's, "
        "seed by seed, with the 95% t-interval (an interval that contains 0 shows no difference).",
        "",
        "![macro curves](real_model_seeds.png)",
    ]
    for setting, by_strategy in settings.items():
        any_run = next(iter(by_strategy.values()))[0]
        tasks = [t for t in any_run.summary["final_eval"] if t != "macro"]
        start = fmean(r.summary["initial_eval"]["macro"] for rs in by_strategy.values() for r in rs)
        lines += ["", f"## {setting} (macro {start:.3f} at round 0)", ""]
        header = ["strategy", "seeds", "final macro", "best macro", "worst task (final)"]
        # no rounds-to-target column: no target is fixed for this model
        rows = [strategy_row(s, rs, target=None) for s, rs in by_strategy.items()]
        lines += md_table([*header, *tasks], rows)
        lines += ["", "Minus fedavg, paired by seed:", ""]
        lines += md_table(
            ["strategy", "pairs", "mean difference", "95% interval"], paired_rows(by_strategy)
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("slices", type=Path, nargs="+", help="fgrpo sweep --out directories")
    parser.add_argument("--out", type=Path, default=RESULTS / "real_model_seeds")
    args = parser.parse_args(argv)
    runs, finished = [], []
    for directory in args.slices:
        try:
            manifest, slice_runs = load_runs(directory)
        except UserInputError as err:  # not a sweep directory: one line, not a traceback
            print(f"real_model_seeds: {err}", file=sys.stderr)
            return 2
        runs += slice_runs
        finished.append(f"{directory}: {len(slice_runs)} of {len(manifest['points'])} points")
    if not runs:
        print(f"no finished run in {', '.join(map(str, args.slices))}", file=sys.stderr)
        return 1
    settings = by_setting(runs)
    for setting, by_strategy in settings.items():
        for strategy, group in by_strategy.items():
            if len({r.seed for r in group}) < len(group):
                print(
                    f"{setting}, {strategy}: two runs of one seed (pass only the seed slices, "
                    "not the lr slice)",
                    file=sys.stderr,
                )
                return 1
    prov = {**provenance("real_model_seeds.py", argv), "finished": "; ".join(finished)}
    record = {
        "settings": {name: against_fedavg(by_strategy) for name, by_strategy in settings.items()},
        **prov,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    args.out.with_suffix(".md").write_text("\n".join(markdown(settings, prov)) + "\n")
    with tempfile.TemporaryDirectory() as tmp:
        figure = plot_curves(Path(tmp), settings, "macro", "held-out macro accuracy")
        shutil.move(figure, args.out.with_suffix(".png"))
    print(f"wrote {args.out}.{{json,md,png}}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
