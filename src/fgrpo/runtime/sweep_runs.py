"""A sweep directory's finished runs, grouped for `fgrpo report`.

Runs are grouped by *panel* (their values of the grid keys other than the strategy and the seed,
e.g. data.alpha=0.1) and *strategy*; the seeds of a group give the mean ± std. Each run comes from
its point in sweep.json and its summary.json, metrics.jsonl, config.toml and resources.json, or
from the same in the sweep's compact ``runs.jsonl`` (`fgrpo report --compact`), which is what a
committed sweep keeps.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fgrpo.core.errors import UserInputError
from fgrpo.runtime.grid import values_label
from fgrpo.runtime.reports import accuracy_series
from fgrpo.runtime.stats import mean_std
from fgrpo.server.round_reward import train_reward
from fgrpo.server.strategies import STRATEGIES

STRATEGY_KEY = (
    "strategy.name"  # its values are the lines of a panel; other strategy.* keys make panels
)
SEED_KEY = "seed"
COMPACT = "runs.jsonl"  # a committed sweep's finished runs, one JSON line each
BASELINE = "fedavg"


def is_reference(strategy: str) -> bool:
    """A reference row (local-only, centralized), not a federated method; a name the registry
    does not know (a run of an earlier release) is shown as a method."""
    return strategy in STRATEGIES and not STRATEGIES[strategy].federated


@dataclass
class Run:
    name: str
    strategy: str
    seed: int
    panel: str  # "data.alpha=0.1, federation.num_clients=4", or "all"
    summary: dict[str, Any]
    rounds: list[dict[str, Any]]
    resources: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)  # the run's config.toml

    def points(self, series: str) -> list[tuple[int, float, float]]:
        """(round, value, standard error) of ``series``: "macro" accuracy (round 0 the starting
        model, binomial se) or the round's "reward" (train.reward; no se is logged for it)."""
        if series == "reward":
            return [
                (r["round"], train_reward(r), 0.0)
                for r in self.rounds
                if train_reward(r) is not None
            ]
        initial = None
        if self.summary.get("initial_eval"):
            initial = {
                "eval": self.summary["initial_eval"],
                "eval_se": self.summary["initial_eval_se"],
            }
        return accuracy_series(initial, self.rounds).get(series, [])

    @property
    def macro(self) -> list[tuple[int, float]]:
        """(round, macro accuracy), round 0 the starting model."""
        return [(r, acc) for r, acc, _ in self.points("macro")]

    def rounds_to(self, target: float) -> int | None:
        return next((r for r, acc in self.macro if acc >= target), None)


def run_record(run_dir: Path) -> dict[str, Any]:
    """What a report needs of one finished run directory, as one JSON object: the compact form a
    committed sweep keeps (``runs.jsonl``) instead of its run directories."""
    resources = run_dir / "resources.json"
    return {
        "name": run_dir.name,
        "config": tomllib.loads((run_dir / "config.toml").read_text()),
        "summary": json.loads((run_dir / "summary.json").read_text()),
        "rounds": [
            json.loads(line)
            for line in (run_dir / "metrics.jsonl").read_text().splitlines()
            if line.strip()
        ],
        "resources": json.loads(resources.read_text()) if resources.is_file() else {},
    }


def read_manifest(directory: Path) -> dict[str, Any]:
    manifest_path = directory / "sweep.json"
    if not manifest_path.is_file():
        raise UserInputError(f"{directory}: no sweep.json; is it an `fgrpo sweep --out` directory?")
    return json.loads(manifest_path.read_text())


def compact_records(directory: Path) -> dict[str, dict[str, Any]]:
    """Point name -> its record in the sweep's compact ``runs.jsonl`` (none without one)."""
    compact = directory / COMPACT
    lines = compact.read_text().splitlines() if compact.is_file() else []
    return {record["name"]: record for record in map(json.loads, filter(str.strip, lines))}


def run_records(directory: Path) -> dict[str, dict[str, Any]]:
    """Point name -> its run record: from its run directory where one holds a summary.json, else
    from the sweep's compact ``runs.jsonl``."""
    records = compact_records(directory)
    for point in read_manifest(directory)["points"]:
        if (directory / point["name"] / "summary.json").is_file():
            records[point["name"]] = run_record(directory / point["name"])
    return records


def write_compact(directory: Path) -> Path:
    """DIR/runs.jsonl: one line per finished point, enough for `fgrpo report` to rebuild every
    table and figure once the run directories are gone."""
    manifest, records = read_manifest(directory), run_records(directory)
    lines = [json.dumps(records[p["name"]]) for p in manifest["points"] if p["name"] in records]
    path = directory / COMPACT
    path.write_text("\n".join(lines) + "\n")
    return path


def load_runs(directory: Path) -> tuple[dict[str, Any], list[Run]]:
    """The manifest and the finished runs of a sweep directory (run directories or runs.jsonl)."""
    manifest, records = read_manifest(directory), run_records(directory)
    runs = []
    for point in manifest["points"]:
        record = records.get(point["name"])
        if record is None or record["summary"].get("final_eval") is None:
            continue  # unfinished, or never evaluated after round 0: nothing to compare
        values = point["values"]
        seed = values.get(SEED_KEY, record["config"].get("seed", 0))
        panel = values_label(
            {k: v for k, v in values.items() if k not in (STRATEGY_KEY, SEED_KEY)}, ", "
        )
        runs.append(
            Run(
                point["name"],
                str(values.get(STRATEGY_KEY, record["summary"]["strategy"])),
                int(seed),
                panel or "all",
                record["summary"],
                record["rounds"],
                record["resources"],
                record["config"],
            )
        )
    return manifest, runs


def groups(runs: list[Run]) -> dict[str, dict[str, list[Run]]]:
    """panel -> strategy -> runs (one per seed), references last."""
    out: dict[str, dict[str, list[Run]]] = {}
    for run in sorted(runs, key=lambda r: (is_reference(r.strategy), r.seed)):
        out.setdefault(run.panel, {}).setdefault(run.strategy, []).append(run)
    return out


def curve(runs: list[Run], series: str) -> list[tuple[int, float, float]]:
    """(round, mean, spread) of ``series`` ("macro" or "reward") at rounds every seed has: the
    spread is the std over seeds, or for a single seed its own standard error (a lone curve is not
    exact)."""
    if len(runs) == 1:
        return runs[0].points(series)
    points = [{x: v for x, v, _ in r.points(series)} for r in runs]
    common = sorted(set.intersection(*(set(p) for p in points))) if points else []
    return [(x, *mean_std([p[x] for p in points])) for x in common]


def band_text(runs: list[Run]) -> str:
    """What a curve's band is, for its legend."""
    return "±1 binomial se" if len(runs) == 1 else f"±1 std over {len(runs)} seeds"
