"""SmolLM2-135M-Instruct before any training: greedy accuracy and pass@8 per task on held-out
prompts.

    python benchmarks/smollm2_tasks.py --size 200 --tasks small-addition comparison ...

The prompts are each task's first ``size`` test-share prompts (fgrpo.data.partitions.task_test_set), the
prefix every run's evaluation uses; pass@8 samples at ``--temperature`` (default 1, as the
tiny model's build report does). RL from verifiable rewards has room to work where pass@8 is well
above greedy. Writes benchmarks/results/<name>.json and .md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch
from bench_common import RESULTS, provenance

from fgrpo.data.partitions import task_test_set
from fgrpo.models.evaluation import accuracy_by_task, pass_at_k, standard_errors
from fgrpo.models.smollm2 import load_smollm2


def measure(
    tasks: list[str],
    size: int,
    pass_size: int,
    difficulty: int,
    max_new_tokens: int,
    k: int,
    temperature: float,
) -> dict:
    """Greedy on the first ``size`` test prompts per task, pass@k on the first ``pass_size`` of
    them."""
    model, tokenizer = load_smollm2()
    sets = {name: task_test_set(name, size, difficulty) for name in tasks}
    started = time.perf_counter()
    greedy = accuracy_by_task(model, tokenizer, sets, max_new_tokens, batch_size=64)
    greedy_seconds = time.perf_counter() - started
    print(f"greedy on {size} prompts per task: {greedy} ({greedy_seconds:.0f} s)", flush=True)
    sampled = pass_at_k(
        model,
        tokenizer,
        {n: rows[:pass_size] for n, rows in sets.items()},
        k,
        max_new_tokens,
        temperature,
    )
    return {
        "greedy": greedy,
        "greedy_se": standard_errors(greedy, dict.fromkeys(tasks, size)),
        f"pass_at_{k}": sampled,
        f"pass_at_{k}_se": standard_errors(sampled, dict.fromkeys(tasks, pass_size)),
        "seconds": {
            "greedy": round(greedy_seconds, 1),
            "total": round(time.perf_counter() - started, 1),
        },
    }


def markdown(report: dict, k: int) -> str:
    s = report["settings"]
    lines = [
        "# SmolLM2-135M-Instruct before training: greedy and pass@8 per task",
        "",
        f"- command: `{report['command']}`",
        f"- machine: {report['machine']}",
        f"- date: {report['date']}",
        f"- prompts: the first {s['size']} test-share prompts per task "
        f"(fgrpo.data.partitions.task_test_set, difficulty "
        f"{s['difficulty']}) greedy; pass@{k} sampled at temperature {s['temperature']} "
        f"on the first {s['pass_size']} of them; "
        f"{s['max_new_tokens']} new tokens",
        "",
        f"| task | greedy | pass@{k} |",
        "|---|---|---|",
    ]
    for name in [*s["tasks"], "macro"]:
        g, p = report["greedy"][name], report[f"pass_at_{k}"][name]
        lines.append(
            f"| {name} | {g:.3f} ± {report['greedy_se'][name]:.3f} | {p:.3f} ± {report[f'pass_at_{k}_se'][name]:.3f} |"
        )
    lines += [
        "",
        f"{report['seconds']['total']} s in total ({report['seconds']['greedy']} s greedy).",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--tasks",
        nargs="+",
        default=["small-addition", "small-multiplication", "comparison", "successor"],
    )
    parser.add_argument("--size", type=int, default=200)
    parser.add_argument(
        "--pass-size", type=int, default=0, help="prompts per task for pass@k; 0: --size"
    )
    parser.add_argument("--difficulty", type=int, default=1)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--temperature", type=float, default=1.0, help="of pass@k's samples")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--name", default="smollm2_tasks", help="result file stem under benchmarks/results/"
    )
    args = parser.parse_args(argv)
    pass_size = min(args.pass_size or args.size, args.size)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    report = {
        **provenance("smollm2_tasks.py", argv if argv is not None else sys.argv[1:]),
        "settings": {
            "tasks": args.tasks,
            "size": args.size,
            "pass_size": pass_size,
            "difficulty": args.difficulty,
            "max_new_tokens": args.max_new_tokens,
            "k": args.k,
            "temperature": args.temperature,
        },
        **measure(
            args.tasks,
            args.size,
            pass_size,
            args.difficulty,
            args.max_new_tokens,
            args.k,
            args.temperature,
        ),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / f"{args.name}.md").write_text(markdown(report, args.k))
    print(markdown(report, args.k))


if __name__ == "__main__":
    main()
