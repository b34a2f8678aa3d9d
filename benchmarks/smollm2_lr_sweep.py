"""The short recorded learning-rate sweep behind configs/smollm2.toml's local recipe.

Each point is a ``centralized`` run of configs/smollm2.toml (one trainer on the pooled prompts:
the local recipe on one client, without the federation) for ``--rounds`` x ``--steps`` GRPO
steps at one learning rate, scored on ``--test-size`` held-out prompts per task before and
after, with the training reward of each round. Writes benchmarks/results/smollm2_lr_sweep.{json,md}
after every point.

    .venv/bin/python benchmarks/smollm2_lr_sweep.py --lrs 1e-4 5e-4 2e-3
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench_common import RESULTS, ROOT, provenance, run_fgrpo


def markdown(result: dict) -> str:
    s = result["setting"]
    lines = [
        "# SmolLM2-135M-Instruct: local learning-rate sweep (centralized, configs/smollm2.toml)",
        "",
        f"- command: `{result['command']}`",
        f"- machine: {result['machine']}",
        f"- date: {result['date']}",
        f"- each point: {s['rounds']} x {s['steps']} GRPO steps, {s['test_size']} held-out prompts per task",
        "",
        "| learning rate | train reward per round | held-out start | final ± se | gain | seconds |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for p in result["points"]:
        rewards = ", ".join(f"{r:.2f}" for r in p["train_reward"])
        lines.append(
            f"| {p['learning_rate']:g} | {rewards} | {p['start']:.3f} | {p['final']:.3f} ± {p['se']:.3f} | "
            f"{p['final'] - p['start']:+.3f} | {p['seconds']:.0f} |"
        )
    if "chosen" in result:
        lines += ["", f"chosen: learning rate {result['chosen']:g} ({result['why']})"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lrs", type=float, nargs="+", default=[1e-4, 5e-4, 2e-3])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=2, help="GRPO steps per round")
    parser.add_argument("--test-size", type=int, default=20)
    parser.add_argument("--work", default="runs/smollm2_lr_sweep")
    args = parser.parse_args(argv)
    result = {
        **provenance("smollm2_lr_sweep.py", argv),
        "setting": {"rounds": args.rounds, "steps": args.steps, "test_size": args.test_size},
        "points": [],
    }
    for lr in args.lrs:
        out = Path(args.work).resolve() / f"lr={lr:g}"
        run = run_fgrpo(
            ROOT / "configs" / "smollm2.toml",
            out,
            [
                "strategy.name=centralized",
                "federation.num_clients=1",
                f"federation.rounds={args.rounds}",
                f"federation.local_steps={args.steps}",
                f"eval.every={args.rounds}",
                f"data.test_size={args.test_size}",
                f"grpo.learning_rate={lr}",
            ],
        )
        rewards = [
            json.loads(line)["train"]["reward"]
            for line in (out / "metrics.jsonl").read_text().splitlines()
        ]
        result["points"].append(
            {
                "learning_rate": lr,
                "train_reward": rewards,
                **{k: run[k] for k in ("start", "final", "se", "seconds", "final_eval")},
            }
        )
        print(f"lr {lr:g}: rewards {rewards}, {run['start']:.3f} -> {run['final']:.3f}", flush=True)
        (RESULTS / "smollm2_lr_sweep.json").write_text(json.dumps(result, indent=2) + "\n")
    best = max(result["points"], key=lambda p: (p["final"], p["train_reward"][-1]))
    result["chosen"], result["why"] = (
        best["learning_rate"],
        "the largest final held-out macro accuracy",
    )
    (RESULTS / "smollm2_lr_sweep.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "smollm2_lr_sweep.md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
