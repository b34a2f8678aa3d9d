"""benchmarks/results/perf.md from perf.json: one row per measured number, a column per label."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Getter = Callable[[dict[str, Any]], Any]


def _get(*keys: str) -> Getter:
    def get(entry: dict[str, Any]) -> Any:
        for key in keys:
            if not isinstance(entry, dict) or key not in entry:
                return None
            entry = entry[key]
        return entry

    return get


ROWS: list[tuple[str, str, Getter]] = [
    (
        "a",
        "federated / centralized wall time, same 120 steps, 2 workers (goal <= 1.10)",
        _get("a", "parallel", "ratio_wall"),
    ),
    (
        "a",
        "the same without process start-up (run's own seconds)",
        _get("a", "parallel", "ratio_in_run"),
    ),
    (
        "a",
        "wall seconds federated / centralized",
        lambda e: " / ".join(
            str(min(r["wall_s"] for r in e["a"]["parallel"][side]))
            for side in ("federated", "centralized")
        ),
    ),
    (
        "a",
        "serial (one 2-thread trainer each side): wall ratio / in-run ratio",
        lambda e: f"{e['a']['serial']['ratio_wall']} / {e['a']['serial']['ratio_in_run']}",
    ),
    ("b", "bytes up per client per round, fp32 / model bytes", _get("b", "up_fp32_over_model")),
    (
        "b",
        "bytes up per client per round, bf16 delta / model bytes",
        _get("b", "up_bf16_over_model"),
    ),
    (
        "b",
        "adapter bytes fp32 / bf16 / model",
        lambda e: (
            e.get("b")
            and f"{e['b']['up_bytes_fp32']:,} / {e['b']['up_bytes_bf16_delta']:,} / {e['b']['model_bytes_fp32']:,}"
        ),
    ),
    ("c", "GRPO step / plain generate of the same batch (goal <= 1.5)", _get("c", "ratio")),
    ("c", "GRPO step seconds (client round / steps)", _get("c", "grpo_step_seconds")),
    ("c", "plain generate seconds", _get("c", "generate_seconds")),
    (
        "c",
        "profile per step: generation / reward / loss fwd / backward / optimizer / rest (s)",
        lambda e: (
            e.get("c") and " / ".join(f"{v:.3f}" for v in e["c"]["breakdown_profiled"].values())
        ),
    ),
    (
        "d",
        "seconds per round at 10 / 100 / 1000 clients",
        lambda e: e.get("d") and " / ".join(str(p["seconds_per_round"]) for p in e["d"]["points"]),
    ),
    (
        "d",
        "server peak RSS MB at 10 / 100 / 1000 clients",
        lambda e: e.get("d") and " / ".join(str(p["server_mb"]) for p in e["d"]["points"]),
    ),
    (
        "d",
        "1000 vs 10 clients: round time ratio (goal <= 1.2)",
        _get("d", "round_ratio_1000_vs_10"),
    ),
    (
        "d",
        "1000 vs 10 clients: server RSS ratio (goal <= 1.2)",
        _get("d", "server_rss_ratio_1000_vs_10"),
    ),
    ("e", "peak RSS MB: server process", _get("e", "server_mb")),
    (
        "e",
        "peak RSS MB: each client worker",
        lambda e: e.get("e") and ", ".join(map(str, e["e"]["workers_mb"])),
    ),
    ("f", "laptop sweep point: seconds per run", _get("f", "seconds_per_run")),
    ("f", "laptop sweep point: runs per hour (goal: 2x before)", _get("f", "runs_per_hour")),
]


def _safe(get: Getter, entry: dict[str, Any]) -> Any:
    try:
        return get(entry)
    except (KeyError, TypeError):  # a part this label did not measure
        return None


def markdown(results: dict[str, dict[str, Any]]) -> str:
    labels = [label for label in ("before", "after") if label in results] + [
        label for label in results if label not in ("before", "after", "notes")
    ]
    lines = ["# fgrpo performance (benchmarks/perf.py)", ""]
    for label in labels:
        entry = results[label]
        lines.append(
            f"- **{label}**: `{entry.get('command')}` on {entry.get('machine')}, {entry.get('date')}; "
            f"1-min load at start {entry.get('load_before', 0):.1f}"
        )
    lines += [
        "",
        "| part | measure | " + " | ".join(labels) + " |",
        "| --- | --- |" + " --- |" * len(labels),
    ]
    for part, name, get in ROWS:
        values = [_safe(get, results[label]) for label in labels]
        if any(v is not None for v in values):
            lines.append(
                f"| {part} | {name} | "
                + " | ".join("" if v is None else str(v) for v in values)
                + " |"
            )
    lines += ["", *results.get("notes", [])]
    return "\n".join(lines) + "\n"
