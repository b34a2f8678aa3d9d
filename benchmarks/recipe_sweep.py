"""The small recorded sweep behind the default local GRPO recipe (``GRPO_DEFAULTS``,
configs/demo.toml).

Each point is a short ``centralized`` run (one trainer on the pooled prompts: the local recipe
without the federation) from the shipped tiny reasoner, evaluated on 200 held-out prompts per task
before and after. Stages vary one knob at a time from a base recipe; a later stage starts from the
best point of the earlier ones (largest final macro accuracy). Writes
``benchmarks/results/recipe_sweep.{json,md}`` after every point.

    .venv/bin/python benchmarks/recipe_sweep.py --steps 160
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench_common import RESULTS, ROOT, provenance, run_fgrpo

BASE = {
    "grpo.learning_rate": 3e-3,
    "grpo.per_device_train_batch_size": 32,
    "grpo.num_generations": 8,
    "grpo.beta": 0.0,
    "grpo.max_grad_norm": 1.0,
}
STAGES = [
    ("learning rate", "grpo.learning_rate", [1e-3, 3e-3, 1e-2]),
    ("generations per prompt", "grpo.num_generations", [4, 8, 16]),
    ("completions per step", "grpo.per_device_train_batch_size", [16, 32, 64]),
    ("gradient clipping", "grpo.max_grad_norm", [0.2, 1.0]),
    ("KL coefficient", "grpo.beta", [0.0, 0.04]),
]


def overrides(recipe: dict, steps: int) -> list[str]:
    # 4 round-equivalents x 4 clients x steps/16 local steps = `steps` steps; evaluated at start and
    # end.
    return [
        "strategy.name=centralized",
        "federation.rounds=4",
        f"federation.local_steps={steps // 16}",
        "federation.num_clients=4",
        "eval.every=4",
        "data.test_size=200",
        "data.train_size=4000",
        *(f"{k}={v}" for k, v in recipe.items()),
    ]


def markdown(result: dict) -> str:
    lines = [
        "# Local GRPO recipe sweep (centralized, shipped tiny reasoner)",
        "",
        f"- command: `{result['command']}`",
        f"- machine: {result['machine']}",
        f"- date: {result['date']}",
        f"- each point: {result['steps']} GRPO steps, constant learning rate, 200 held-out prompts per task",
        "",
        "| stage | value | start | final ± se | gain | seconds |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for p in result["points"]:
        lines.append(
            f"| {p['stage']} | {p['value']} | {p['start']:.3f} | {p['final']:.3f} ± {p['se']:.3f} | "
            f"{p['final'] - p['start']:+.3f} | {p['seconds']:.0f} |"
        )
    lines += ["", f"chosen: `{json.dumps(result['chosen'])}`"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--steps", type=int, default=160, help="GRPO steps per point (a multiple of 16)"
    )
    parser.add_argument("--work", default="runs/recipe_sweep")
    parser.add_argument(
        "--stages", type=int, default=len(STAGES), help="run only the first N stages"
    )
    args = parser.parse_args(argv)
    result = {
        "points": [],
        "steps": args.steps,
        "chosen": dict(BASE),
        **provenance("recipe_sweep.py", argv),
    }
    done: dict[str, dict] = {}
    for stage, key, values in STAGES[: args.stages]:
        for value in values:
            recipe = {**result["chosen"], key: value}
            tag = json.dumps(recipe, sort_keys=True)
            if tag not in done:  # the base point recurs in every stage: run it once
                name = "-".join(f"{k.split('.')[-1]}={v}" for k, v in sorted(recipe.items()))
                done[tag] = run_fgrpo(
                    ROOT / "configs" / "learning_signal.toml",
                    Path(args.work).resolve() / name,
                    overrides(recipe, args.steps),
                )
            point = {
                "stage": stage,
                "value": value,
                "recipe": recipe,
                **{k: done[tag][k] for k in ("start", "final", "se", "seconds")},
            }
            result["points"].append(point)
            print(
                f"{stage} {value}: {point['start']:.3f} -> {point['final']:.3f} ± {point['se']:.3f}",
                flush=True,
            )
            (RESULTS / "recipe_sweep.json").write_text(json.dumps(result, indent=2) + "\n")
        stage_points = [p for p in result["points"] if p["stage"] == stage]
        result["chosen"] = max(stage_points, key=lambda p: p["final"])["recipe"]
    (RESULTS / "recipe_sweep.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "recipe_sweep.md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
