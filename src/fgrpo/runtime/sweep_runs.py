"""A sweep directory's finished runs, grouped for `fgrpo report`.

Runs are grouped by *panel* (their values of the grid keys other than the strategy and the seed,
e.g. data.alpha=0.1) and *strategy*; the seeds of a group give the mean ± std. Each run comes from
its point in sweep.json and its summary.json, metrics.jsonl, config.toml and resources.json.
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


def load_runs(directory: Path) -> tuple[dict[str, Any], list[Run]]:
    """The manifest and the finished runs of a sweep directory."""
    manifest_path = directory / "sweep.json"
    if not manifest_path.is_file():
        raise UserInputError(f"{directory}: no sweep.json; is it an `fgrpo sweep --out` directory?")
    manifest = json.loads(manifest_path.read_text())
    runs = []
    for point in manifest["points"]:
        run = directory / point["name"]
        if not (run / "summary.json").is_file():
            continue
        values = point["values"]
        summary = json.loads((run / "summary.json").read_text())
        if summary.get("final_eval") is None:  # never evaluated after round 0: nothing to compare
            continue
        seed = values.get(SEED_KEY, tomllib.loads((run / "config.toml").read_text()).get("seed", 0))
        strategy = str(values.get(STRATEGY_KEY, summary["strategy"]))
        panel = values_label(
            {k: v for k, v in values.items() if k not in (STRATEGY_KEY, SEED_KEY)}, ", "
        )
        lines = (run / "metrics.jsonl").read_text().splitlines()
        resources = (
            json.loads((run / "resources.json").read_text())
            if (run / "resources.json").is_file()
            else {}
        )
        runs.append(
            Run(
                point["name"],
                strategy,
                int(seed),
                panel or "all",
                summary,
                [json.loads(line) for line in lines if line.strip()],
                resources,
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
