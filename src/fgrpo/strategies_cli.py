"""``fgrpo strategies``: every aggregation rule and local RL preset, one line each."""

from __future__ import annotations

import argparse


def strategies_text() -> str:
    from .rl import RL_DESCRIPTIONS, RL_PRESETS
    from .server.strategies import STRATEGIES

    width = max(len(name) for name in STRATEGIES)
    lines = ["Strategies (strategy.name):"]
    lines += [f"  {name:<{width}}  {entry.description}" for name, entry in STRATEGIES.items()]
    lines += [
        "",
        "FGRPO variants (with fgrpo / fgrpo-adam):",
        "  strategy.gain    range (p-b)/(r_max-r_min) | ratio (p-b)/|b| | zscore (p-b)/EMA|p-b| | difference p-b",
        "                   | delta (p_after-p_before)/(r_max-r_min), probe only; per task, rollout-weighted",
        "  strategy.signal  train-reward (per-task rollout reward) | probe (greedy reward on a held-out local probe)",
        "  strategy.baseline_at  server | client (history stays on the client; only the gain is sent)",
        "",
        "Local RL algorithms (rl.algorithm; grpo.* keys still override):",
    ]
    width = max(len(name) for name in RL_PRESETS)
    for name, settings in RL_PRESETS.items():
        lines.append(f"  {name:<{width}}  {RL_DESCRIPTIONS[name]}")
        lines.append(f"  {'':<{width}}    " + ", ".join(f"{k}={v!r}" for k, v in settings.items()))
    return "\n".join(lines)


def cmd_strategies(args: argparse.Namespace) -> int:
    del args
    print(strategies_text())
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("strategies", help="list aggregation strategies and local RL presets")
    parser.set_defaults(func=cmd_strategies)
