"""Single-client GRPO on the shipped tiny reasoner: does mean reward rise over steps?

One client, the whole procedural pool, TRL's GRPOTrainer driven through
``fgrpo.client.grpo.train_locally`` (the same code path a federated client
uses), one uninterrupted run of ``--steps`` steps. Prints the mean reward of
each block of steps, and greedy test accuracy before and after.

Rewards are compared on one scale: by default every task's reward is rescaled
so that a right answer earns 1 (``data.reward_scale``), i.e. the mean reward is
close to the success rate (countdown's wrong answers still cost -1).

    .venv/bin/python benchmarks/single_client_grpo.py --steps 60 --block 10 --out benchmarks/results/single_client_grpo.md
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
import time
from pathlib import Path
from statistics import fmean

import torch
from transformers import TrainerCallback

from fgrpo.client.grpo import train_locally
from fgrpo.config import load_config
from fgrpo.data import test_sets, training_pool
from fgrpo.evaluation import accuracy_by_task
from fgrpo.models.lora import fresh_adapter_model
from fgrpo.tasks import get_task
from fgrpo.tasks.rewards import reward_functions


class RewardRecorder(TrainerCallback):
    """Keeps TRL's per-step logged mean reward."""

    def __init__(self) -> None:
        self.rewards: list[float] = []

    def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001 - transformers' signature
        if logs and "reward" in logs:
            self.rewards.append(float(logs["reward"]))


def unit_scales(tasks: list[str]) -> dict[str, float]:
    """reward_scale that makes a right answer worth 1 on every task."""
    return {t: 1.0 / get_task(t).reward_range[1] for t in tasks}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--block", type=int, default=10, help="steps per printed block")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--native-scales", action="store_true", help="keep each task's native reward scale")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config override, e.g. --set grpo.learning_rate=1e-3 (repeatable)")
    parser.add_argument("--out", help="also write a markdown report here")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    cfg = load_config(None, [f"model.name={args.model}", f"seed={args.seed}", *args.overrides])
    if not args.native_scales and not cfg.data.reward_scale:
        cfg.data.reward_scale = unit_scales(cfg.data.tasks)
    model, tokenizer = fresh_adapter_model(cfg.model, cfg.seed)
    pool, held_out = training_pool(cfg), test_sets(cfg)
    before = accuracy_by_task(model, tokenizer, held_out, cfg.eval.max_new_tokens)

    recorder = RewardRecorder()
    started = time.perf_counter()
    train_locally(model, tokenizer, pool, reward_functions(cfg), cfg, seed=cfg.seed, steps=args.steps,
                  callbacks=[recorder])
    seconds = time.perf_counter() - started
    after = accuracy_by_task(model, tokenizer, held_out, cfg.eval.max_new_tokens)

    blocks = [recorder.rewards[i : i + args.block] for i in range(0, len(recorder.rewards), args.block)]
    settings = cfg.grpo_settings()
    lines = [
        "| steps | mean reward |",
        "| --- | --- |",
        *(f"| {i * args.block + 1}-{i * args.block + len(b)} | {fmean(b):.3f} |" for i, b in enumerate(blocks)),
        "",
        "| task | greedy accuracy before | after |",
        "| --- | --- | --- |",
        *(f"| {t} | {before[t]:.3f} | {after[t]:.3f} |" for t in before),
        "",
        f"{len(recorder.rewards)} GRPO steps in {seconds:.0f}s; pool {len(pool)} prompts ({', '.join(cfg.data.tasks)}); "
        f"lr {settings['learning_rate']}, batch {settings['per_device_train_batch_size']} completions, "
        f"{settings['num_generations']} generations per prompt, LoRA r={cfg.model.lora_r}; "
        f"reward scales {'native' if args.native_scales else 'unit (right answer = 1)'}; "
        f"test sets: {cfg.data.test_size} prompts per task.",
    ]
    report = "\n".join(lines)
    print(report)
    if args.out:
        command = "python benchmarks/single_client_grpo.py " + " ".join(argv if argv is not None else sys.argv[1:])
        header = [
            "# Single-client GRPO on the tiny reasoner",
            "",
            f"- command: `{command}`",
            f"- machine: {platform.machine()} CPU, {torch.get_num_threads()} torch thread(s), no GPU "
            f"(2-core VM shared with other jobs)",
            f"- date: {datetime.date.today().isoformat()}",
            f"- torch {torch.__version__}",
            "",
            "",
        ]
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text("\n".join(header) + report + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
