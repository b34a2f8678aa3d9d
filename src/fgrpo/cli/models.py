"""Model subcommands of the ``fgrpo`` CLI: models, build-tiny-model, export, eval.

``register(sub, add_config_args)`` adds them to the CLI's subparsers, so cli.py
only needs one line per module.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

from fgrpo.core.errors import UserInputError


# --- fgrpo models -------------------------------------------------------------
def cmd_models(args: argparse.Namespace) -> int:
    # deferred: torch, Flower and datasets load only when a command runs
    from fgrpo.models.registry import KNOWN_MODELS, describe

    rows = [describe(name) for name in KNOWN_MODELS]
    width = max(len(r.name) for r in rows)
    print(f"{'name':<{width}}  {'kind':<11}  {'available':<9}  loads from")
    for r in rows:
        print(f"{r.name:<{width}}  {r.kind:<11}  {'yes' if r.available else 'no':<9}  {r.location}")
    print(
        f"{'<hub id|dir>':<{width}}  {'hub-or-path':<11}  {'-':<9}  any Hugging Face hub id or local model directory"
    )
    return 0


# --- fgrpo build-tiny-model ------------------------------------------------------
def cmd_build_tiny(args: argparse.Namespace) -> int:
    # deferred: torch, Flower and datasets load only when a command runs
    from fgrpo.models.build_tiny import BuildSettings, build_tiny_model
    from fgrpo.models.tiny_model import TINY_DIR

    out = Path(args.out) if args.out else TINY_DIR
    if out.exists() and any(out.iterdir()) and not (out / "config.json").is_file():
        raise UserInputError(f"refusing to overwrite {out}: it exists and is not a model directory")
    report = build_tiny_model(out, BuildSettings(seed=args.seed))
    print(json.dumps({"greedy": report["greedy"], "pass_at_8": report["pass_at_8"]}, indent=2))
    return 0


# --- fgrpo export ---------------------------------------------------------------------
def run_adapter_dir(run_dir: Path) -> Path:
    """The run's final adapter (falling back to its latest checkpoint for an unfinished run)."""
    if not run_dir.is_dir():
        raise UserInputError(f"run directory {run_dir} does not exist")
    for candidate in (run_dir / "final" / "adapter", run_dir / "checkpoint" / "adapter"):
        if (candidate / "adapter_config.json").is_file():
            return candidate
    raise UserInputError(
        f"{run_dir}: no final/adapter or checkpoint/adapter (is it an `fgrpo run` directory?)"
    )


def run_config(run_dir: Path):
    # deferred: torch, Flower and datasets load only when a command runs
    from fgrpo.runtime.configs import load_config

    path = run_dir / "config.toml"
    if not path.is_file():
        raise UserInputError(f"{run_dir}: no config.toml (is it an `fgrpo run` directory?)")
    return load_config(path, local_files=False)  # only the model is needed: the data may be gone


def base_residual(run_dir: Path) -> dict[str, Any]:
    """The base weights' residual of an exact run (model.lora_aggregation), from its checkpoint."""
    # deferred: torch, Flower and datasets load only when a command runs
    from fgrpo.runtime.checkpoint import load_checkpoint
    from fgrpo.server.lora_aggregation import STATE_KEY

    checkpoint = load_checkpoint(run_dir)
    return {} if checkpoint is None else dict(checkpoint.strategy.get(STATE_KEY) or {})


def client_adapter(run_dir: Path, cfg: Any, client: str | None) -> dict[str, Any] | None:
    """One client's own adapter, from the checkpoint of a run that evaluated each client's model
    (local-only's adapters, fedsa's Ā + B_k); None for a run whose model is its global adapter."""
    # deferred: torch, Flower and datasets load only when a command runs
    from fgrpo.runtime.checkpoint import load_checkpoint
    from fgrpo.server.lora_aggregation import PERSONAL_STATE_KEY
    from fgrpo.server.strategies import strategy_entry

    fedsa = cfg.model.lora_aggregation == "fedsa"
    if not fedsa and strategy_entry(cfg.strategy.name).evaluation != "clients":
        if client is not None:
            raise UserInputError(f"--client: {run_dir} has one global model; leave --client out")
        return None
    checkpoint = load_checkpoint(run_dir)
    strategy = {} if checkpoint is None else checkpoint.strategy
    if fedsa:  # the global A with the client's own B
        known = {
            c: {**checkpoint.adapter, **s["b"]}
            for c, s in strategy.get(PERSONAL_STATE_KEY, {}).items()
        }
    else:
        known = {c: s["adapter"] for c, s in strategy.get("clients", {}).items()}
    if client not in known:
        raise UserInputError(
            f"{run_dir} evaluated each client's own model: export one with --client "
            f"(known: {', '.join(sorted(known)) or 'none'})"
        )
    return dict(known[client])


def client_adapter_dir(adapter: Path, state: dict[str, Any], directory: Path) -> Path:
    """A copy of the run's adapter directory holding ``state`` (the same PEFT tensor names)."""
    # deferred: torch, Flower and datasets load only when a command runs
    import numpy as np
    from safetensors.numpy import load_file, save_file

    weights = adapter / "adapter_model.safetensors"
    if set(load_file(weights)) != set(state):
        raise UserInputError(f"{adapter}: its tensors are not the checkpoint's client adapter's")
    shutil.copytree(adapter, directory)
    save_file(
        {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in state.items()},
        directory / weights.name,
    )
    return directory


def export_run(
    run_dir: str | Path,
    out: str | Path,
    merged: bool = False,
    force: bool = False,
    client: str | None = None,
) -> Path:
    """Write the run's final adapter (PEFT format) or base+adapter merged (a plain HF model), plus
    the tokenizer and a model card (README.md). The adapter names a base ``from_pretrained`` loads
    (fgrpo.models.registry.base_location); a base that exists only in memory (``tiny-random``) is
    saved into the export as ``base/``.

    ``out`` must be new or empty, and outside the run directory unless ``force``; nothing is ever
    deleted. A run that evaluated each client's own model (local-only, model.lora_aggregation =
    fedsa) exports the model of the ``client`` named.
    """
    # deferred: torch, Flower and datasets load only when a command runs
    from peft import PeftModel

    from fgrpo.models.availability import check_adapter_dir, check_model
    from fgrpo.models.export_card import model_card
    from fgrpo.models.export_target import check_export_target, move_into_place, staging_dir
    from fgrpo.models.lora_modes import set_base_residual
    from fgrpo.models.registry import base_location, load_base

    run_dir, out = Path(run_dir), Path(out)
    adapter = run_adapter_dir(run_dir)
    cfg = run_config(run_dir)
    check_export_target(run_dir, out, force)
    check_adapter_dir(adapter, key="run adapter")
    check_model(cfg.model.name, key=f"{run_dir}/config.toml model.name")
    own = client_adapter(run_dir, cfg, client)
    residual = base_residual(run_dir) if cfg.model.lora_aggregation == "exact" else {}
    if residual and not merged:
        raise UserInputError(
            f"{run_dir} aggregated its LoRA factors exactly: its model is the base plus a residual "
            "no adapter holds; export it with --merged"
        )
    base, tokenizer = load_base(
        cfg.model.name, default_system_prompt=cfg.model.default_system_prompt
    )
    location = base_location(cfg.model.name)
    tmp = staging_dir(out)
    try:
        if own is not None:
            adapter = client_adapter_dir(adapter, own, tmp.with_name(tmp.name + ".client"))
        if merged:
            model = PeftModel.from_pretrained(base, adapter)
            set_base_residual(model, residual)  # exact: W0 + R, then the adapter merged on top
            model = model.merge_and_unload()
            model.save_pretrained(tmp, safe_serialization=True)
        else:
            shutil.copytree(adapter, tmp, dirs_exist_ok=True)
            if location is None:  # only in memory: the export carries the base
                base.save_pretrained(tmp / "base", safe_serialization=True)
                tokenizer.save_pretrained(tmp / "base")
                location = str(out.resolve() / "base")  # where it will be once moved into place
            config_path = tmp / "adapter_config.json"
            adapter_cfg = json.loads(config_path.read_text())
            adapter_cfg["base_model_name_or_path"] = location  # AutoPeftModelForCausalLM loads it
            config_path.write_text(json.dumps(adapter_cfg, indent=2) + "\n")
        tokenizer.save_pretrained(tmp)
        (tmp / "fgrpo_export.json").write_text(
            json.dumps(
                {
                    "run": str(run_dir.resolve()),
                    "base_model": cfg.model.name,
                    "base_model_path": location,
                    "merged": merged,
                },
                indent=2,
            )
            + "\n"
        )
        (tmp / "README.md").write_text(
            model_card(cfg, run_dir, out, location or cfg.model.name, merged)
        )
        move_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # our own staging directory, never the user's
        raise
    finally:
        shutil.rmtree(tmp.with_name(tmp.name + ".client"), ignore_errors=True)  # ours as well
    return out


def cmd_export(args: argparse.Namespace) -> int:
    out = export_run(args.run_dir, args.out, args.merged, args.force, args.client)
    kind = "merged model (AutoModelForCausalLM.from_pretrained)" if args.merged else "PEFT adapter"
    print(f"exported {kind} to {out}")
    return 0


# --- fgrpo eval -------------------------------------------------------------------------
def evaluate_model(
    cfg: Any, model_name: str, adapter: str | Path | None = None
) -> tuple[dict[str, float], dict[str, float]]:
    """(greedy accuracy per task and macro, their binomial standard errors) of a base model,
    optionally with a PEFT adapter."""
    # deferred: torch, Flower and datasets load only when a command runs
    from fgrpo.data.partitions import test_sets
    from fgrpo.models.availability import load_adapter
    from fgrpo.models.cpu import torch_threads
    from fgrpo.models.devices import resolve_device
    from fgrpo.models.evaluation import accuracy_by_task, standard_errors
    from fgrpo.models.registry import load_base

    device = resolve_device(cfg.eval.device)  # before the load: a missing GPU costs no loading time
    model, tokenizer = load_base(model_name, default_system_prompt=cfg.model.default_system_prompt)
    if adapter is not None:
        model = load_adapter(model, adapter, model_name)
    model.to(device).eval()
    held_out = test_sets(cfg)
    with torch_threads(cfg.eval.threads):  # as the server's evaluation (fgrpo.models.cpu)
        accuracy = accuracy_by_task(
            model,
            tokenizer,
            held_out,
            cfg.eval.max_new_tokens,
            cfg.eval.batch_size,
            concurrent_tasks=cfg.eval.concurrent_tasks,
        )
    return accuracy, standard_errors(accuracy, {task: len(rows) for task, rows in held_out.items()})


def accuracy_table(accuracy: dict[str, float], se: dict[str, float], test_size: int) -> str:
    width = max(len(k) for k in accuracy)
    row = lambda k: f"{k:<{width}}  {accuracy[k]:8.3f}  ± {se[k]:.3f}"  # noqa: E731
    lines = [f"{'task':<{width}}  accuracy  (± standard error)", f"{'-' * width}  --------"]
    lines += [row(k) for k in accuracy if k != "macro"]
    lines.append(row("macro"))
    lines.append(
        f"({test_size} held-out prompts per task, greedy decoding; binomial standard errors)"
    )
    return "\n".join(lines)


def cmd_eval(args: argparse.Namespace) -> int:
    # deferred: torch, Flower and datasets load only when a command runs
    from fgrpo.core.out_dir import check_writable_dir
    from fgrpo.models.availability import check_adapter_base, check_adapter_dir, check_model
    from fgrpo.runtime.configs import load_config

    cfg = load_config(args.config, args.overrides)
    name = args.model or cfg.model.name
    check_model(name, key="--model" if args.model else "model.name")
    if args.adapter:
        check_adapter_dir(args.adapter)
        check_adapter_base(args.adapter, name)
    if args.json:
        check_writable_dir(Path(args.json).parent, "--json")
        if Path(args.json).is_dir():
            raise UserInputError(f"--json {args.json} is a directory; give a file name")
    accuracy, se = evaluate_model(cfg, name, args.adapter)
    print(f"model {name}" + (f" + adapter {args.adapter}" if args.adapter else ""))
    print(accuracy_table(accuracy, se, cfg.data.test_size))
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {"model": name, "adapter": args.adapter, "accuracy": accuracy, "accuracy_se": se},
                indent=2,
            )
        )
    return 0


def register(sub: Any, add_config_args: Any) -> None:
    """Add the model subcommands to the CLI's subparsers."""
    models = sub.add_parser("models", help="list the model names and where they load from")
    models.set_defaults(func=cmd_models)

    build = sub.add_parser(
        "build-tiny-model", help="train the shipped tiny reasoner from scratch (SFT, CPU)"
    )
    build.add_argument("--out", help="output directory (default: the package's models/tiny)")
    build.add_argument(
        "--seed", type=int, default=0, help="seed for data, initial weights and stopping point"
    )
    build.set_defaults(func=cmd_build_tiny)

    export = sub.add_parser(
        "export", help="export a run's final adapter (PEFT) or the merged model"
    )
    export.add_argument("run_dir", help="an `fgrpo run` output directory")
    export.add_argument(
        "--out", required=True, help="directory to write (new or empty; nothing is deleted)"
    )
    export.add_argument(
        "--merged", action="store_true", help="merge the adapter into the base model"
    )
    export.add_argument("--force", action="store_true", help="allow --out inside the run directory")
    export.add_argument(
        "--client", help="the client whose own model to export (local-only and fedsa runs)"
    )
    export.set_defaults(func=cmd_export)

    evaluate = sub.add_parser("eval", help="greedy accuracy per task on the held-out test sets")
    add_config_args(evaluate)
    evaluate.add_argument("--model", help="model name (default: model.name from the config)")
    evaluate.add_argument("--adapter", help="PEFT adapter directory (e.g. from `fgrpo export`)")
    evaluate.add_argument("--json", help="also write the accuracies to this JSON file")
    evaluate.set_defaults(func=cmd_eval)
