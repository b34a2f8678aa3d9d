"""The ``fgrpo`` command line."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fgrpo.core.errors import ConfigError, UserInputError


def _add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="TOML config file (configs/demo.toml)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config key, e.g. --set federation.rounds=2 (repeatable)",
    )


def cmd_run(args: argparse.Namespace) -> int:
    # deferred: torch, Flower and datasets load only when a command runs
    from fgrpo.runtime.configs import load_config
    from fgrpo.runtime.run_setup import claim_fresh, clear, resume_config
    from fgrpo.runtime.runner import run_experiment

    if args.resume and (args.out or args.overwrite):
        raise ConfigError(
            "--resume", "continues the run in its own directory; drop --out/--overwrite"
        )
    if args.resume:
        out = Path(args.resume)
        cfg = resume_config(out, args.config, args.overrides)
    else:
        cfg = load_config(args.config, args.overrides)
        out = Path(args.out or cfg.output.dir)
        cfg.output.dir = str(
            out.resolve()
        )  # config.toml's paths are absolute (fgrpo.core.config_paths)
        claim_fresh(out, args.overwrite)
    # deferred: torch, Flower and datasets load only when a command runs
    from fgrpo.runtime.preflight import check_run

    notes = check_run(cfg, out, dry_run=args.dry_run)
    if args.dry_run:
        # deferred: torch, Flower and datasets load only when a command runs
        from fgrpo.models.memory import memory_line
        from fgrpo.runtime.run_plan import plan_line

        print(
            f"fgrpo run --dry-run: {plan_line(cfg)}; run directory {out}; inputs checked, nothing run"
        )
        print(
            f"  {memory_line(cfg) if 'model' not in notes else 'memory: not estimated (no model config here)'}"
        )
        for note in notes.values():
            print(f"  {note}")
        return 0
    for note in notes.values():
        print(note, file=sys.stderr)
    if args.overwrite:
        clear(out)  # only now: a config that fails to validate leaves the old run untouched
    # deferred: torch, Flower and datasets load only when a command runs
    from fgrpo.runtime.console import RunConsole
    from fgrpo.runtime.watchdog import guard, mark

    guard(mark())  # whatever ends this process, Ray's daemons and workers end with it
    with RunConsole(
        out, cfg.federation.rounds, cfg.federation.local_steps, verbose=args.verbose
    ) as console:
        previous = {
            sig: signal.signal(sig, _stop_now(out, console))
            for sig in (signal.SIGINT, signal.SIGTERM)
        }
        # deferred: torch, Flower and datasets load only when a command runs
        import ray._private.utils as ray_utils

        ray_sets = ray_utils.set_sigterm_handler
        # ray.init replaces SIGTERM's handler with sys.exit, whose unwinding through Flower's loop
        # and Ray's threads aborts the process (status -6); ours exits at once and the watchdog ends
        # Ray
        ray_utils.set_sigterm_handler = lambda _handler: None
        try:
            summary = run_experiment(cfg, out, resume=bool(args.resume), console=console)
        finally:
            ray_utils.set_sigterm_handler = ray_sets
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    if summary["rounds_aggregated"] == 0:
        first = _first_failure(out / "metrics.jsonl")
        print(
            "fgrpo: no round aggregated an update (every client failed or was rejected"
            f"{'; first: ' + first if first else ''}); "
            f"the adapter is untrained; see 'failures' in {out / 'metrics.jsonl'}",
            file=sys.stderr,
        )
        return 1
    return 0


def _stop_now(out: Path, console: Any) -> Callable[[int, Any], None]:
    """Ctrl-C or SIGTERM during a run: stop at once. Flower's simulation loop answers a
    KeyboardInterrupt by waiting for its ServerApp thread to finish every round, so the process
    exits here instead; the watchdog then ends Ray's daemons and workers, and the run directory
    keeps its last completed round (its checkpoint is written atomically) for --resume."""

    def handler(signum: int, _frame: Any) -> None:
        console.abort(
            f"fgrpo: interrupted ({signal.Signals(signum).name}); continue with --resume {out}"
        )
        os._exit(128 + signum)

    return handler


def _first_failure(metrics: Path) -> str | None:
    """The run's first recorded failure, as the console shows it: usually the reason for all."""
    # deferred: torch, Flower and datasets load only when a command runs
    from fgrpo.server.federation import failure_text

    for line in metrics.read_text().splitlines() if metrics.is_file() else []:
        failures = json.loads(line).get("failures") or []
        if failures:
            return failure_text(failures[0])
    return None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fgrpo", description="Federated GRPO with FGRPO aggregation"
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        help="show the Python traceback of input errors too (anywhere on the command line)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a federated GRPO experiment (Flower simulation)")
    _add_config_args(run)
    run.add_argument(
        "--out", help="run directory (default: output.dir from the config); must be new or empty"
    )
    run.add_argument(
        "--resume",
        metavar="DIR",
        help="continue the run in DIR from its last completed round, "
        "with DIR/config.toml (only --set federation.rounds=N may change it)",
    )
    run.add_argument(
        "--overwrite", action="store_true", help="replace the run already in the run directory"
    )
    run.add_argument(
        "--dry-run", action="store_true", help="check every input and print the plan; train nothing"
    )
    run.add_argument(
        "--verbose",
        action="store_true",
        help="show library warnings and the clients' output "
        "on the terminal (otherwise they go to DIR/run.log)",
    )
    run.set_defaults(func=cmd_run)
    # deferred: torch, Flower and datasets load only when a command runs
    from fgrpo.cli import data as data_cli

    data_cli.register(sub, _add_config_args)
    # deferred: torch, Flower and datasets load only when a command runs
    from fgrpo.cli import strategies as strategies_cli

    strategies_cli.register(sub)
    # deferred: torch, Flower and datasets load only when a command runs
    from fgrpo.cli import models as model_commands

    model_commands.register(sub, _add_config_args)
    # deferred: torch, Flower and datasets load only when a command runs
    from fgrpo.cli import experiments as experiment_commands

    experiment_commands.register(sub)
    # deferred: torch, Flower and datasets load only when a command runs
    from fgrpo.runtime import flower_local

    flower_local.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--debug" in argv:  # accepted after the subcommand too: `fgrpo run ... --debug`
        argv = ["--debug", *(a for a in argv if a != "--debug")]
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UserInputError as err:
        if args.debug:
            raise
        message = " ".join(str(err).split())  # one line, whatever the message held
        print(f"fgrpo: {err.kind}: {message}", file=sys.stderr)
        return 2
    except (
        KeyboardInterrupt
    ):  # Ctrl-C or SIGTERM: what a person asked for, not a failure to explain
        print("fgrpo: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `fgrpo ... | head`: the reader left, which is no failure of ours
        # Python's flush of stdout at exit would raise again: point it at /dev/null
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # as a shell reports a process ended by SIGPIPE


if __name__ == "__main__":
    sys.exit(main())
