"""The ``centralized`` reference point: one GRPOTrainer on the pooled data of all clients.

It gets the same total number of local steps as the federation would take:
rounds x local_steps x clients-per-round (clients per round as Flower samples them:
max(int(num_clients * fraction_train), min_clients)). Every local_steps x clients-per-round
steps count as one "round": a metrics.jsonl line (one ledger row, client-id ``centralized``,
weight 1), an evaluation every eval.every rounds and at the end, and a checkpoint. The
run directory has the same artefacts as a federated run. No Flower is involved.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from statistics import fmean
from typing import Any, Callable

import numpy as np
import torch
from transformers import TrainerCallback

from ..client.grpo import train_locally
from ..config import Config
from ..data import test_sets, training_pool
from ..evaluation import accuracy_by_task
from ..experiments.reports import summarise, summary_text, write_plots
from ..models.lora import fresh_adapter_model
from ..models.transport import adapter_state
from ..tasks.rewards import reward_functions
from . import run_dir
from .checkpoint import save_adapter, save_checkpoint
from .strategies.weighted import ledger_row, ClientReport

CLIENT_ID = "centralized"


def clients_per_round(cfg: Config) -> int:
    f = cfg.federation
    return min(f.num_clients, max(int(f.num_clients * f.fraction_train), f.min_clients))


def total_steps(cfg: Config) -> tuple[int, int]:
    """(steps per round-equivalent, total steps)."""
    per_round = cfg.federation.local_steps * clients_per_round(cfg)
    return per_round, per_round * cfg.federation.rounds


class RoundBoundaries(TrainerCallback):
    """Turns every ``steps_per_round`` logged GRPO steps into one federated-style round record."""

    def __init__(self, steps_per_round: int, on_round: Callable[[int, list[dict[str, Any]]], None]) -> None:
        self.steps_per_round = steps_per_round
        self.on_round = on_round
        self.pending: list[dict[str, Any]] = []

    def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001
        if not logs or "reward" not in logs:
            return
        self.pending.append(dict(logs))
        if state.global_step % self.steps_per_round == 0:
            steps, self.pending = self.pending, []
            self.on_round(state.global_step // self.steps_per_round, steps)


def run_centralized(cfg: Config, out_dir: Path, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train centrally; write metrics.jsonl, summary.json, plots, checkpoint/ and final/adapter."""
    progress = progress or print
    started = time.perf_counter()
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    run_dir.prepare(out_dir, cfg)
    model, tokenizer = fresh_adapter_model(cfg.model, cfg.seed)
    pool = training_pool(cfg)
    held_out = test_sets(cfg)
    per_round, steps = total_steps(cfg)
    rounds = cfg.federation.rounds

    def evaluate() -> dict[str, float]:
        return accuracy_by_task(model, tokenizer, held_out, cfg.eval.max_new_tokens, cfg.eval.batch_size)

    torch.manual_seed(cfg.seed)
    initial_eval = evaluate() if cfg.eval.every else None
    if initial_eval:
        progress(f"round 0/{rounds} | macro acc {initial_eval['macro']:.3f}")
    clock = {"round": time.perf_counter()}

    def on_round(rnd: int, logged: list[dict[str, Any]]) -> None:
        rewards = [float(e["reward"]) for e in logged]
        report = ClientReport(client_id=CLIENT_ID, num_examples=len(pool), reward=fmean(rewards), metrics={})
        record: dict[str, Any] = {
            "round": rnd,
            "clients": [ledger_row(report, 1.0, steps=len(logged))],
            "failures": [],
            "train": {
                "reward": fmean(rewards),
                "reward-first": rewards[0],
                "reward-last": rewards[-1],
                "completion-length": fmean(float(e.get("completions/mean_length", 0.0)) for e in logged),
            },
        }
        if cfg.eval.every and (rnd % cfg.eval.every == 0 or rnd == rounds):
            record["eval"] = evaluate()
            model.train()
        record["seconds"] = round(time.perf_counter() - clock["round"], 2)
        run_dir.append_round(out_dir, record)
        save_checkpoint(out_dir, rnd, model, adapter_state(model), {"steps": rnd * per_round})
        progress(_round_line(rnd, rounds, record))
        clock["round"] = time.perf_counter()

    progress(f"centralized: {steps} GRPO steps on {len(pool)} pooled prompts ({per_round} per round-equivalent)")
    train_locally(
        model, tokenizer, pool, reward_functions(cfg), cfg, seed=cfg.seed, steps=steps,
        callbacks=[RoundBoundaries(per_round, on_round)],
    )
    save_adapter(model, adapter_state(model), out_dir / "final" / "adapter")
    records = run_dir.read_rounds(out_dir)
    write_plots(out_dir, initial_eval, records)
    summary = summarise(cfg.strategy.name, initial_eval, records, time.perf_counter() - started)
    run_dir.write_summary(out_dir, summary)
    progress(summary_text(summary, out_dir))
    return summary


def _round_line(rnd: int, total: int, record: dict[str, Any]) -> str:
    parts = [f"round {rnd}/{total}", "centralized", f"reward {record['train']['reward']:.3f}"]
    if "eval" in record:
        parts.append(f"macro acc {record['eval']['macro']:.3f}")
    parts.append(f"{record['seconds']:.1f}s")
    return " | ".join(parts)
