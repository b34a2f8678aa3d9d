"""The model card (README.md) ``fgrpo export`` writes beside the weights: what the base is,
what the federation trained on and how, and how well the run's last evaluation scored."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fgrpo.core.config import Config


def _accuracy(summary: dict[str, Any] | None) -> list[str]:
    if summary is None:
        return [
            "| final accuracy | not recorded: the run has no summary.json "
            "(unfinished; exported from its last checkpoint) |"
        ]
    final, se = summary.get("final_eval"), summary.get("final_eval_se") or {}
    if not final:
        return ["| final accuracy | not evaluated |"]
    initial, se0 = summary.get("initial_eval"), summary.get("initial_eval_se") or {}
    macro = f"{final['macro']:.3f} ± {se.get('macro', 0.0):.3f}"
    if initial:
        macro += f" (round 0: {initial['macro']:.3f} ± {se0.get('macro', 0.0):.3f})"
    per_task = ", ".join(f"{task} {value:.3f}" for task, value in final.items() if task != "macro")
    return [
        f"| final macro accuracy | {macro}; greedy, held-out prompts |",
        f"| per task | {per_task} |",
    ]


def _strategy(cfg: Config) -> str:
    s = cfg.strategy
    if s.name.startswith("fgrpo"):
        return f"{s.name} (signal {s.signal}, gain {s.gain}, τ {s.tau})"
    return s.name


def model_card(cfg: Config, run_dir: Path, out: Path, base: str, merged: bool) -> str:
    """README.md of the export in ``out``. ``base``: where ``from_pretrained`` finds the base
    model."""
    summary_path = run_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else None
    f = cfg.federation
    rounds = f"{summary['rounds']} of {f.rounds}" if summary else f"{f.rounds} planned"
    tasks = [*cfg.data.tasks, *(s.name for s in cfg.data.sources)]
    is_hub_id = not Path(base).is_absolute()
    header = [
        "---",
        f"library_name: {'transformers' if merged else 'peft'}",
        *([f"base_model: {base}"] if is_hub_id else []),
        "tags: [fgrpo, grpo, federated-learning, lora]",
        "---",
        "",
    ]
    what = (
        "the base model with the LoRA adapter merged in (a plain transformers model)"
        if merged
        else "a LoRA adapter (PEFT)"
    )
    loader = "AutoModelForCausalLM" if merged else "AutoPeftModelForCausalLM"
    rows = [
        "| | |",
        "| --- | --- |",
        f"| base model | `{cfg.model.name}`"
        + ("" if base == cfg.model.name else f" (`{base}`)")
        + " |",
        f"| tasks | {', '.join(tasks)} |",
        f"| rounds | {rounds}, {f.local_steps} local GRPO steps per client, {f.num_clients} clients |",
        f"| strategy | {_strategy(cfg)} |",
        f"| RL algorithm | {cfg.rl.algorithm} |",
        *_accuracy(summary),
        f"| run | `{run_dir.resolve()}` (seed {cfg.seed}) |",
    ]
    lines = [
        *header,
        f"# fgrpo export of `{cfg.model.name}`",
        "",
        f"{what[0].upper()}{what[1:]}, trained by federated GRPO with fgrpo (the run's config: "
        f"`config.toml` in the run directory).",
        "",
        *rows,
        "",
        "```python",
        f"from {'transformers' if merged else 'peft'} import {loader}",
        "",
        f'model = {loader}.from_pretrained("{out.resolve()}")',
        "```",
        "",
    ]
    return "\n".join(lines)
