"""Performance of fgrpo, side by side on one machine, one model and one data recipe.

    python benchmarks/perf.py                      # every part, ~12 min on 2 cores
    python benchmarks/perf.py --only c,d           # some parts
    python benchmarks/perf.py --baseline /path/to/old/src   # before (old) and after (this) interleaved

Parts (configs/demo.toml's recipe on the shipped tiny model unless said otherwise):
  a. federated wall time / ``centralized`` wall time, same total GRPO steps, both on the whole machine;
  b. bytes one client sends per round (fp32 adapter, bf16 update) / the full model's bytes;
  c. one GRPO step / plain ``model.generate`` of the same batch, with a profile breakdown;
  d. 10 / 100 / 1000 simulated clients, 10 sampled per round: seconds per round, server peak RSS;
  e. peak RSS of the server process and of each Ray client worker (sampled with psutil);
  f. runs per hour of a laptop sweep: `fgrpo sweep` of the demo point (4 clients x 10 rounds x 10 local
     steps) over --repeats seeds, wall time per point.

Every run is a child process (``fgrpo run`` or benchmarks/perf_probe.py) with ``--src`` on its
PYTHONPATH. Results merge into benchmarks/results/perf.json under the label (``after`` by
default; ``before`` and ``after`` with --baseline) and benchmarks/results/perf.md is rewritten from it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
from bench_common import RESULTS, ROOT, provenance

from fgrpo.analysis.perf_report import markdown

DEMO = ROOT / "configs" / "demo.toml"
PROBE = Path(__file__).with_name("perf_probe.py")
QUICK_EVAL = [
    "eval.every=0",
    "data.test_size=20",
]  # the last round is still evaluated (20 prompts per task)


class TreeWatch(threading.Thread):
    """Peak RSS of a process and of each Ray client worker below it, sampled every 0.2 s."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.root = psutil.Process(pid)
        self.server = 0
        self.workers: dict[int, int] = {}
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                self.server = max(self.server, self.root.memory_info().rss)
                for child in self.root.children(recursive=True):
                    try:
                        if "ClientAppActor" in " ".join(child.cmdline()):
                            self.workers[child.pid] = max(
                                self.workers.get(child.pid, 0), child.memory_info().rss
                            )
                    except psutil.Error:
                        continue
            except psutil.Error:
                break
            self.stopped.wait(0.2)

    def peaks_mb(self) -> dict:
        return {
            "server_mb": round(self.server / 2**20),
            "workers_mb": sorted(round(v / 2**20) for v in self.workers.values()),
        }


def child_env(src: Path, work: Path) -> dict[str, str]:
    """A fresh round-0 cache per label and invocation: the first sweep point computes it, as a
    user's would."""
    return {
        **os.environ,
        "PYTHONPATH": str(src),
        "PYTHONUNBUFFERED": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "FGRPO_CACHE": str(work / "cache"),
    }


def watched_run(command: list[str], src: Path, work: Path, log_path: Path) -> TreeWatch:
    """Run ``command`` (an ``fgrpo run``) with ``src`` on its PYTHONPATH, watching its memory."""
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            command, cwd=ROOT, env=child_env(src, work), stdout=log, stderr=subprocess.STDOUT
        )
        watch = TreeWatch(proc.pid)
        watch.start()
        code = proc.wait()
        watch.stopped.set()
    if code != 0:
        raise RuntimeError(f"fgrpo run failed ({code}); see {log_path}")
    return watch


def fgrpo_run(src: Path, overrides: list[str], work: Path) -> dict:
    """One ``fgrpo run`` of the demo recipe: wall seconds, the run's own seconds per round, RSS
    peaks."""
    out = Path(tempfile.mkdtemp(prefix="run-", dir=work))
    command = [sys.executable, "-m", "fgrpo", "run", "--config", str(DEMO), "--out", str(out)]
    for item in overrides:
        command += ["--set", item]
    started = time.perf_counter()
    watch = watched_run(command, src, work, out.with_suffix(".log"))
    wall = time.perf_counter() - started
    rounds = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    summary = json.loads((out / "summary.json").read_text())
    return {
        "wall_s": round(wall, 1),
        "run_s": summary["seconds"],
        "round_s": [r["seconds"] for r in rounds],
        "final_macro": summary["final_eval"]["macro"],
        **watch.peaks_mb(),
        # the clients' mean training reward per round: equal before and after means equal training
        "train_reward": [round(r["train"]["reward"], 6) for r in rounds if r.get("train")],
    }


def probe(src: Path, what: str, work: Path, extra: list[str]) -> dict:
    out = work / f"probe-{what}.json"
    subprocess.run(
        [sys.executable, str(PROBE), what, str(DEMO), str(out), *extra],
        cwd=ROOT,
        env=child_env(src, work),
        check=True,
    )
    return json.loads(out.read_text())


def part_a(src: Path, work: Path, repeats: int, serial: bool) -> dict:
    """Same 4 clients x 3 rounds x 10 steps = 120 GRPO steps, federated and centralized, interleaved
    A/B.

    ``parallel`` is the default setup: 2 Ray workers with one torch thread each, against the one
    centralized trainer (one client's threads). ``serial`` gives both sides the same single trainer
    (client_cpus = 2: one Ray worker at a time, 2 threads), isolating what the federation adds."""
    shape = ["federation.rounds=3", *QUICK_EVAL]
    result: dict = {"steps": 120, "goal": "parallel ratio_wall <= 1.10"}
    variants = [
        ("parallel", [], repeats),
        *([("serial", ["federation.client_cpus=2"], 1)] if serial else []),
    ]
    for variant, extra, times in variants:
        fed, central = [], []
        for _ in range(times):
            fed.append(fgrpo_run(src, [*shape, *extra], work))
            central.append(fgrpo_run(src, [*shape, *extra, "strategy.name=centralized"], work))
        wall = statistics.median(f["wall_s"] for f in fed) / statistics.median(
            c["wall_s"] for c in central
        )
        inrun = statistics.median(f["run_s"] for f in fed) / statistics.median(
            c["run_s"] for c in central
        )
        result[variant] = {
            "federated": fed,
            "centralized": central,
            "ratio_wall": round(wall, 3),
            "ratio_in_run": round(inrun, 3),
        }
    return result


def part_d(src: Path, work: Path) -> dict:
    """One small GRPO step per sampled client; the same 10 clients' work per round at every
    scale."""
    points = []
    for n in (10, 100, 1000):
        overrides = [
            f"federation.num_clients={n}",
            f"federation.fraction_train={10 / n}",
            "federation.rounds=8",
            "federation.local_steps=1",
            "data.partition=iid",
            f"data.train_size={max(2000, 4 * n)}",
            "grpo.per_device_train_batch_size=8",
            "grpo.num_generations=4",
            "data.test_size=5",
            "eval.every=0",
        ]
        run = fgrpo_run(src, overrides, work)
        # round 1 includes the workers' start-up; the last round includes the final evaluation
        steady = run["round_s"][1:-1]
        points.append(
            {"clients": n, "seconds_per_round": round(statistics.median(steady), 2), **run}
        )
    base = points[0]
    return {
        "points": points,
        "round_ratio_1000_vs_10": round(
            points[-1]["seconds_per_round"] / base["seconds_per_round"], 3
        ),
        "server_rss_ratio_1000_vs_10": round(points[-1]["server_mb"] / base["server_mb"], 3),
        "goal": "both ratios <= 1.2",
    }


def fgrpo_sweep(src: Path, seeds: int, work: Path) -> dict:
    """One ``fgrpo sweep`` of the demo point (10 rounds) over ``seeds`` seeds, as a laptop sweep
    runs its points: wall seconds of the whole sweep and of each point (sweep.json)."""
    out = Path(tempfile.mkdtemp(prefix="sweep-", dir=work))
    spec = out.with_suffix(".toml")
    spec.write_text(
        f'base = "{DEMO}"\n[set]\n"federation.rounds" = 10\n[grid]\nseed = {list(range(seeds))}\n'
    )
    started = time.perf_counter()
    with open(out.with_suffix(".log"), "w") as log:
        code = subprocess.call(
            [sys.executable, "-m", "fgrpo", "sweep", "--config", str(spec), "--out", str(out)],
            cwd=ROOT,
            env=child_env(src, work),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    wall = time.perf_counter() - started
    if code != 0:
        raise RuntimeError(f"fgrpo sweep failed ({code}); see {out.with_suffix('.log')}")
    points = json.loads((out / "sweep.json").read_text())["points"]
    return {
        "wall_s": round(wall, 1),
        "points": len(points),
        "point_s": [p["seconds"] for p in points],
        "final_macro": [
            json.loads((out / p["name"] / "summary.json").read_text())["final_eval"]["macro"]
            for p in points
        ],
    }


def part_f(sources: dict[str, Path], work: Path, repeats: int) -> dict[str, dict]:
    """Runs per hour of a laptop sweep: ``repeats`` points (seeds) in one ``fgrpo sweep``, its wall
    time (start-up included) per point; with two sources, one sweep each, the baseline's first."""
    sweeps = {label: fgrpo_sweep(src, repeats, work / label) for label, src in sources.items()}
    result = {}
    for label, done in sweeps.items():
        per_run = done["wall_s"] / done["points"]
        result[label] = {
            "point": "configs/demo.toml, federation.rounds=10 (4 clients x 10 rounds x 10 local steps), "
            f"{done['points']} seeds in one fgrpo sweep",
            "sweep": done,
            "seconds_per_run": round(per_run, 1),
            "runs_per_hour": round(3600 / per_run, 1),
        }
    return result


def worker_peaks(entry: dict) -> dict | None:
    """(e) from part a's federated demo-recipe runs: the server's and each worker's peak RSS."""
    runs = entry.get("a", {}).get("parallel", {}).get("federated", [])
    if not runs:
        return None
    return {
        "server_mb": max(r["server_mb"] for r in runs),
        "workers_mb": max((r["workers_mb"] for r in runs), key=lambda w: max(w, default=0)),
        "from": "the demo-recipe federated runs of part a",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default="a,b,c,d,e,f", help="comma-separated parts, e.g. c,d")
    parser.add_argument("--label", default="after", help="where the numbers go in perf.json")
    parser.add_argument(
        "--baseline-label", default="before", help="where --baseline's numbers go in perf.json"
    )
    parser.add_argument("--src", default=str(ROOT / "src"), help="the fgrpo source to measure")
    parser.add_argument(
        "--baseline",
        default="",
        help="an older fgrpo source: every part runs on it too, "
        "interleaved, as --baseline-label; doubles the time",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=2,
        help="A/B repeats of part a; points (seeds) of part f's sweep",
    )
    parser.add_argument(
        "--serial", action="store_true", help="part a also with one 2-thread trainer per side"
    )
    parser.add_argument("--work", default="", help="scratch directory (default: a temporary one)")
    args = parser.parse_args(argv)
    parts = set(args.only.split(","))
    work = Path(args.work or tempfile.mkdtemp(prefix="fgrpo-perf-"))
    sources = (
        {args.baseline_label: Path(args.baseline).resolve(), args.label: Path(args.src).resolve()}
        if args.baseline
        else {args.label: Path(args.src).resolve()}
    )
    for label in sources:
        (work / label).mkdir(parents=True, exist_ok=True)
    path = RESULTS / "perf.json"
    results = json.loads(path.read_text()) if path.is_file() else {}
    for label in sources:
        results.setdefault(label, {}).update(
            {
                **provenance("perf.py", argv),
                "load_before": os.getloadavg()[0],
                "src": str(sources[label]),
            }
        )

    def save(label: str, part: str, value: dict | None) -> None:
        if value is None:
            return
        results[label][part] = value
        print(f"{label} {part}: {json.dumps(value)[:300]}", flush=True)
        path.write_text(json.dumps(results, indent=1) + "\n")
        (RESULTS / "perf.md").write_text(markdown(results))

    measures = {
        "b": lambda src, w: probe(src, "bytes", w, []),
        "c": lambda src, w: probe(src, "step", w, ["--steps", "5", "--set", "data.train_size=400"]),
        "a": lambda src, w: part_a(src, w, args.repeats, args.serial),
        "d": part_d,
    }
    for part in ("b", "c", "a", "d"):
        if part in parts:
            for label, src in sources.items():
                save(label, part, measures[part](src, work / label))
    if "f" in parts:
        for label, value in part_f(sources, work, args.repeats).items():
            save(label, "f", value)
    if "e" in parts:
        for label in sources:
            save(label, "e", worker_peaks(results[label]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
