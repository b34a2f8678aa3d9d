"""A real model's GRPO step against its arithmetic, and the old code against the new, side by side.

    python benchmarks/perf_real.py --baseline /path/to/old/src        # ~25 min on 2 cores
    python benchmarks/perf_real.py --parts memory                     # the memory part only

configs/smollm2.toml's recipe (SmolLM2-135M-Instruct, 16 completions x 24 tokens a step, one torch
thread as a client has). Each measurement is a fresh child process (benchmarks/perf_probe.py real)
with one source tree on its PYTHONPATH, this checkout's and the baseline's alternating, so both
see the same machine load:
  - step: seconds of one GRPO step as a client runs it (train_locally), and of the plain
    ``generate`` + one forward (log-probs of the completion) + its backward of the same batch;
  - autocast: the step batch's forward and backward in float32 and under bf16 autocast
    (``grpo.bf16 = true``), which only a CPU with native bf16 (AVX512-BF16, AMX) runs fast;
  - memory: peak RSS of the server and of each client worker during one real SmolLM2 round
    (2 clients, 2 local steps), beside what ``fgrpo run --dry-run`` estimates per client.
The baseline's config is the same file without the keys it does not know. Results:
benchmarks/results/perf_real.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

from bench_common import RESULTS, ROOT, provenance
from perf import PROBE, child_env, watched_run

CONFIG = ROOT / "configs" / "smollm2.toml"
NEW_KEYS = {"model": ["default_system_prompt"]}  # keys the baseline's code does not know
MEMORY_ROUND = [
    "federation.rounds=1",
    "federation.local_steps=2",
    "eval.every=0",
    "data.test_size=20",
]


def baseline_config(work: Path) -> Path:
    """configs/smollm2.toml without the keys added since the baseline (as TOML, by hand: two levels)."""
    tree = tomllib.loads(CONFIG.read_text())
    for table, keys in NEW_KEYS.items():
        for key in keys:
            tree.get(table, {}).pop(key, None)
    lines = []
    for table, values in tree.items():
        if isinstance(values, dict):
            lines.append(f"[{table}]")
            lines += [f"{k} = {json.dumps(v)}" for k, v in values.items()]
        else:
            lines.insert(0, f"{table} = {json.dumps(values)}")
    path = work / "baseline.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def step(src: Path, config: Path, work: Path, label: str, steps: int, repeats: int) -> dict:
    out = work / f"step-{label}.json"
    subprocess.run(
        [
            sys.executable,
            str(PROBE),
            "real",
            str(config),
            str(out),
            "--steps",
            str(steps),
            "--repeats",
            str(repeats),
        ],
        cwd=ROOT,
        env=child_env(src, work),
        check=True,
    )
    return json.loads(out.read_text())


def dry_run_estimate(src: Path, work: Path) -> tuple[float, str]:
    """The per-client GB ``fgrpo run --dry-run`` prints for the memory round, and its line."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "fgrpo",
            "run",
            "--config",
            str(CONFIG),
            "--out",
            str(work / "dry"),
            "--dry-run",
            *[a for item in MEMORY_ROUND for a in ("--set", item)],
        ],
        cwd=ROOT,
        env=child_env(src, work),
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    line = next(x.strip() for x in out.splitlines() if "memory per client" in x)
    return float(re.search(r"= ([\d.]+) GB", line).group(1)), line


def memory(src: Path, work: Path) -> dict:
    out = work / "memory-run"
    command = [sys.executable, "-m", "fgrpo", "run", "--config", str(CONFIG), "--out", str(out)]
    for item in MEMORY_ROUND:
        command += ["--set", item]
    # first: the dry run loads the model, so its one-time conversion (SmolLM2's GGUF, into this
    # work directory's FGRPO_CACHE) is not part of the round's peak
    estimate_gb, line = dry_run_estimate(src, work)
    peaks = watched_run(command, src, work, work / "memory-run.log").peaks_mb()
    client_gb = max(peaks["workers_mb"]) / 1024
    return {
        "run": " ".join(
            ["fgrpo run --config configs/smollm2.toml", *(f"--set {x}" for x in MEMORY_ROUND)]
        ),
        "server_peak_gb": round(peaks["server_mb"] / 1024, 2),
        "client_peak_gb": [round(mb / 1024, 2) for mb in peaks["workers_mb"]],
        "dry_run_client_estimate_gb": estimate_gb,
        "dry_run_line": line,
        "estimate_over_measured": round(estimate_gb / client_gb, 3),
        "goal": "estimate within 25% of the measured client peak",
    }


def parts(child: dict) -> str:
    return " / ".join(str(child["plain"][k]) for k in ("generate", "forward", "backward"))


def markdown(result: dict) -> str:
    new, old = result["new"], result["old"]
    rows = [
        "| | this code | baseline |",
        "|---|---|---|",
        f"| GRPO step, s (the least disturbed child) | {new['step_seconds']} | {old['step_seconds']} |",
        f"| of it, generate, s | {new['step_generate_seconds']} | {old['step_generate_seconds']} |",
        f"| plain generate + forward + backward, s | {new['plain']['total']} | {old['plain']['total']} |",
        f"| plain generate / forward / backward, s | {parts(new)} | {parts(old)} |",
        f"| step / plain | {new['ratio']} | {old['ratio']} |",
        f"| prompt tokens (mean), completion tokens | {new['prompt_tokens']}, {new['completion_tokens']} | "
        f"{old['prompt_tokens']}, {old['completion_tokens']} |",
    ]
    profile = [
        "| part of a step (profiled round) | this code, s | baseline, s |",
        "|---|---|---|",
    ] + [
        f"| {part} | {new['profile'][part]} | {old['profile'].get(part, '')} |"
        for part in new["profile"]
    ]
    lines = [
        "# A real model's GRPO step against its arithmetic (issue 27)",
        "",
        f"`{result['command']}` — {result['machine']}, {result['date']}.",
        "",
        f"**step / plain = {result['ratio']}** (goal <= 1.2); **speedup over the baseline = "
        f"{result['speedup']}x** (goal >= 2), medians of {result['alternations']} alternations.",
        "",
        *rows,
        "",
        *profile,
    ]
    if "autocast" in result:
        a = result["autocast"]
        f32, bf16 = a["seconds"]["float32"], a["seconds"]["bf16 autocast"]
        lines += [
            "",
            "## bf16 autocast on this CPU",
            "",
            f"`{a['command']}`, {a['date']}: CPU capability {a['cpu_capability']}, native bf16 "
            f"{a['native_bf16']}; batch {a['batch']}: forward {f32['forward']} s in float32, "
            f"{bf16['forward']} s under bf16 autocast; backward {f32['backward']} s, "
            f"{bf16['backward']} s.",
        ]
    if "memory" in result:
        m = result["memory"]
        lines += [
            "",
            "## Memory of a real SmolLM2 round",
            "",
            f"`{m['run']}`: server peak {m['server_peak_gb']} GB, client workers {m['client_peak_gb']} GB; "
            f"`--dry-run` estimates {m['dry_run_client_estimate_gb']} GB per client "
            f"(estimate / measured = {m['estimate_over_measured']}; goal within 25%).",
            "",
            f"> {m['dry_run_line']}",
        ]
    return "\n".join(lines + ["", *result.get("notes", [])]) + "\n"


def steps(args: argparse.Namespace, work: Path) -> dict:
    """The step part: new and old children alternating; medians over the alternations."""
    old_config = baseline_config(work)
    runs: dict[str, list[dict]] = {"new": [], "old": []}
    for i in range(args.alternations):
        for label, src, config in (
            ("new", ROOT / "src", CONFIG),
            ("old", args.baseline, old_config),
        ):
            runs[label].append(step(src, config, work, f"{label}{i}", args.steps, args.repeats))
            print(label, i, runs[label][-1]["step_seconds"], runs[label][-1]["plain"], flush=True)
    new_step = statistics.median(r["step_seconds"] for r in runs["new"])
    old_step = statistics.median(r["step_seconds"] for r in runs["old"])
    new = min(runs["new"], key=lambda r: r["step_seconds"])  # the least disturbed child
    return {
        "step_seconds": round(new_step, 3),
        "plain_seconds": round(statistics.median(r["plain"]["total"] for r in runs["new"]), 3),
        "ratio": round(statistics.median(r["ratio"] for r in runs["new"]), 3),
        "old_step_seconds": round(old_step, 3),
        "speedup": round(old_step / new_step, 3),
        "profile": new["profile"],
        "alternations": args.alternations,
        "new": new,
        "old": min(runs["old"], key=lambda r: r["step_seconds"]),
        "children": runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", type=Path, help="the old code's src directory (step part)")
    parser.add_argument("--steps", type=int, default=2, help="GRPO steps per measured round")
    parser.add_argument("--repeats", type=int, default=2, help="measured rounds per child")
    parser.add_argument("--alternations", type=int, default=2, help="new/old child pairs")
    parser.add_argument(
        "--parts",
        default="step,autocast,memory",
        help="some of step, autocast, memory; results merge into the JSON",
    )
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    if "step" in parts and args.baseline is None:
        parser.error("the step part needs --baseline (the old code's src directory)")
    work = Path(tempfile.mkdtemp(prefix="perf-real-"))
    path = RESULTS / "perf_real.json"
    result = json.loads(path.read_text()) if path.is_file() else {}
    if "step" in parts:
        result.update(steps(args, work), **provenance("perf_real.py", None))
    if "autocast" in parts:
        out = work / "autocast.json"
        subprocess.run(
            [sys.executable, str(PROBE), "autocast", str(CONFIG), str(out)],
            cwd=ROOT,
            env=child_env(ROOT / "src", work),
            check=True,
        )
        result["autocast"] = {**json.loads(out.read_text()), **provenance("perf_real.py", None)}
    if "memory" in parts:
        result["memory"] = {**memory(ROOT / "src", work), **provenance("perf_real.py", None)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1) + "\n")
    (RESULTS / "perf_real.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
