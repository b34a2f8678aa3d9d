"""The ``fgrpo`` command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .config import ConfigError, load_config


def _add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="TOML config file (configs/demo.toml)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one config key, e.g. --set federation.rounds=2 (repeatable)")


def cmd_run(args: argparse.Namespace) -> int:
    from .experiments.runner import run_experiment
    from .run_setup import claim_fresh, clear, resume_config

    if args.resume and (args.out or args.overwrite):
        raise ConfigError("--resume", "continues the run in its own directory; drop --out/--overwrite")
    if args.resume:
        out = Path(args.resume)
        cfg = resume_config(out, args.config, args.overrides)
    else:
        cfg = load_config(args.config, args.overrides)
        out = Path(args.out or cfg.output.dir)
        cfg.output.dir = str(out)
        claim_fresh(out, args.overwrite)
    from .data import check_data  # bad data or reward functions fail here, before any client starts

    check_data(cfg)
    if args.overwrite:
        clear(out)  # only now: a config that fails to validate leaves the old run untouched
    run_experiment(cfg, out, resume=bool(args.resume))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fgrpo", description="Federated GRPO with FGRPO aggregation")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a federated GRPO experiment (Flower simulation)")
    _add_config_args(run)
    run.add_argument("--out", help="run directory (default: output.dir from the config); must be new or empty")
    run.add_argument("--resume", metavar="DIR", help="continue the run in DIR from its last completed round, "
                     "with DIR/config.toml (only --set federation.rounds=N may change it)")
    run.add_argument("--overwrite", action="store_true", help="replace the run already in the run directory")
    run.set_defaults(func=cmd_run)
    from . import data_cli  # `fgrpo tasks`, `fgrpo data describe`

    data_cli.register(sub, _add_config_args)
    from . import strategies_cli  # `fgrpo strategies`

    strategies_cli.register(sub)
    from .models import commands as model_commands  # `fgrpo models | build-tiny-model | export | eval`

    model_commands.register(sub, _add_config_args)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as err:
        print(f"fgrpo: config error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
