"""``fgrpo strategies``: every aggregation rule and local RL preset, one line each."""

from __future__ import annotations

import argparse
from typing import Any

FGRPO_KEYS = ("strategy.signal", "strategy.gain", "strategy.baseline_at")


def traits(entry: Any) -> str:
    """What sets a registry entry apart from a plain federated strategy, as a bracketed note."""
    notes = [] if entry.federated else ["reference"]
    notes += [] if entry.in_flower else ["one process, no Flower"]
    notes += [] if entry.dp_wrappable else ["no privacy.dp"]
    notes += [] if entry.resumable else ["no --resume"]
    notes += [] if entry.evaluation == "global" else [f"evaluates: {entry.evaluation}"]
    return f" [{'; '.join(notes)}]" if notes else ""


def strategies_text() -> str:
    # deferred: torch, Flower and datasets load only when a command runs
    from fgrpo.core.config_reference import help_of
    from fgrpo.core.rl import RL_DESCRIPTIONS, RL_PRESETS
    from fgrpo.server.strategies import STRATEGIES

    width = max(len(name) for name in STRATEGIES)
    lines = ["Strategies (strategy.name):"]
    lines += [
        f"  {name:<{width}}  {entry.description}{traits(entry)}"
        for name, entry in STRATEGIES.items()
    ]
    lines += [
        "",
        "FGRPO variants (with fgrpo / fgrpo-adam; the keys' help in docs/configuration.md):",
    ]
    lines += [f"  {key:<20} {help_of(key)}" for key in FGRPO_KEYS]
    lines += [
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
