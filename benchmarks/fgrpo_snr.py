"""How clean must FGRPO's per-round gain be for the null and stalled-client thresholds, and how clean is it?

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
import sys
from pathlib import Path

from bench_common import RESULTS, provenance

from fgrpo.analysis.snr import measured, needed_snr


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
        "# FGRPO's per-round gain: the signal-to-noise the null and stalled-client thresholds "
        "need, and what was measured",
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
