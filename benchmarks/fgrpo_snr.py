"""How clean must FGRPO's per-round gain be for issue 10's thresholds, and how clean is it?

    python benchmarks/fgrpo_snr.py benchmarks/results/fgrpo_signal.json [more result files]

FGRPO weights w_k ∝ n_k^γ · exp(g_k / τ) (DESIGN.md). Take a ``delta`` gain, the round's own
before/after change of a client's probe (no history), as g = μ + σ·ε per client-round with
independent standard normal ε, and equal n_k. Then, by simulation:

- IID null (exchangeable clients, the same μ): total-variation distance of the 4 weights from
  FedAvg's; the thresholds ask median TV <= 0.05 and, over the 8 judged rounds, max <= 0.15;
- stalled client (g exactly 0, as measured) with 3 learners at μ: its weight / FedAvg's <= 0.5.

Only the ratio μ/σ (signal-to-noise per client-round) matters, since τ scales both. The script
finds the smallest μ/σ for which some τ meets all three, and sets it beside the μ/σ that
benchmarks/fgrpo_signal.py measured (``probe_gain_per_round``: mean and se over client-rounds).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
from bench_common import RESULTS, provenance

CLIENTS, ROUNDS, DRAWS = 4, 8, 4000
TV_MEDIAN, TV_MAX, STALLED_RATIO = 0.05, 0.15, 0.5


def weights(gains: np.ndarray, tau: float) -> np.ndarray:
    z = gains / tau
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def meets(snr: float, tau: float, rng: np.random.Generator) -> bool:
    """Whether gains of signal-to-noise ``snr`` meet every threshold at ``tau`` (σ = 1)."""
    iid = weights(snr + rng.standard_normal((DRAWS, ROUNDS, CLIENTS)), tau)
    tv = 0.5 * np.abs(iid - 1 / CLIENTS).sum(axis=-1)
    learners = snr + rng.standard_normal((DRAWS, CLIENTS - 1))
    stalled = weights(np.concatenate([np.zeros((DRAWS, 1)), learners], axis=1), tau)[:, 0]
    return bool(
        np.median(tv) <= TV_MEDIAN
        and np.median(tv.max(axis=1)) <= TV_MAX
        and stalled.mean() * CLIENTS <= STALLED_RATIO
    )


def needed_snr(seed: int = 0) -> dict[str, float]:
    """The smallest signal-to-noise (grid of 0.1) at which some τ (σ units) meets every
    threshold."""
    taus = np.geomspace(0.05, 50, 120)
    for snr in np.arange(0.1, 30.0, 0.1):
        for tau in taus:
            if meets(float(snr), float(tau), np.random.default_rng(seed)):
                return {"snr": round(float(snr), 1), "tau_in_sigma": round(float(tau), 3)}
    return {"snr": math.inf, "tau_in_sigma": math.nan}


def measured(path: Path) -> dict[str, dict[str, float]]:
    """Per delta mode and client group: mean, sd and mean/sd of the per-round probe gains."""
    doc = json.loads(path.read_text())
    out = {}
    for mode, m in doc["modes"].items():
        for group, g in (m.get("probe_gain_per_round") or {}).items():
            if group == "stalled" or not g["n"] or not g["se"]:
                continue
            sd = g["se"] * math.sqrt(g["n"])
            out[f"{mode} {group}"] = {
                "mean": g["mean"],
                "sd": sd,
                "snr": g["mean"] / sd,
                "n": g["n"],
                "local_steps": doc["setting"]["local_steps"],
            }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results", nargs="+", help="fgrpo_signal.py JSON files")
    parser.add_argument(
        "--out", default=str(RESULTS / "fgrpo_snr"), help="writes OUT.json and OUT.md"
    )
    args = parser.parse_args(argv)
    need = needed_snr()
    rows = {f"{Path(p).name}: {k}": v for p in args.results for k, v in measured(Path(p)).items()}
    doc = {"needed": need, "measured": rows, **provenance("fgrpo_snr.py", argv)}
    Path(args.out).with_suffix(".json").write_text(json.dumps(doc, indent=1) + "\n")
    lines = [
        "# FGRPO's per-round gain: the signal-to-noise issue 10's thresholds need, and what was measured",
        "",
        f"- command: `{doc['command']}`",
        f"- machine: {doc['machine']}",
        f"- date: {doc['date']}",
        "",
        f"Needed (4 clients, delta gain, model in the script's docstring): mean/sd per client-round >= "
        f"**{need['snr']}** (at τ = {need['tau_in_sigma']} σ).",
        "",
        "| result file: mode, clients | local steps | mean gain per round | sd | mean/sd | client-rounds |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    lines += [
        f"| {k} | {v['local_steps']} | {v['mean']:+.4f} | {v['sd']:.4f} | {v['snr']:.2f} | {v['n']} |"
        for k, v in rows.items()
    ]
    Path(args.out).with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
