"""What every run does around its training, federated or centralized.

Seeding, the run directory, the server's copy of the adapter model, held-out
evaluation, the per-round metrics line + checkpoint + progress line, and the
closing artefacts (final adapter, plots, summary) live here once, so the
``centralized`` reference point writes exactly what a federated run writes.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import Config
from ..data import test_sets
from ..evaluation import accuracy_by_task, standard_errors
from ..experiments.reports import summarise, summary_text, write_plots
from ..models.lora import fresh_adapter_model
from ..models.transport import adapter_state, load_adapter_state
from . import run_dir
from .checkpoint import save_adapter, save_checkpoint


class RunJournal:
    """One run's directory and evaluation model; call ``start``, ``end_round`` per round, ``finish``."""

    def __init__(self, cfg: Config, out_dir: Path, progress: Callable[[str], None]) -> None:
        self.cfg, self.out_dir, self.progress = cfg, out_dir, progress
        self.started = time.perf_counter()
        random.seed(cfg.seed)  # Flower samples clients with the global `random`
        np.random.seed(cfg.seed)
        run_dir.prepare(out_dir, cfg)
        self.model, self.tokenizer = fresh_adapter_model(cfg.model, cfg.seed)
        self.held_out = test_sets(cfg)
        self.initial_eval: dict[str, dict[str, float]] | None = None

    def evaluate(self, state: dict[str, np.ndarray] | None = None) -> dict[str, dict[str, float]]:
        """Greedy accuracy per task of ``state`` (default: the model's current adapter) and its
        binomial standard errors, as the ``eval`` and ``eval_se`` entries of a metrics line."""
        if state is not None:
            load_adapter_state(self.model, state)
        cfg = self.cfg
        accuracy = accuracy_by_task(self.model, self.tokenizer, self.held_out, cfg.eval.max_new_tokens, cfg.eval.batch_size)
        return {"eval": accuracy, "eval_se": standard_errors(accuracy, {t: len(r) for t, r in self.held_out.items()})}

    def start(self) -> None:
        """Round-0 evaluation of the starting adapter."""
        torch.manual_seed(self.cfg.seed)
        if self.cfg.eval.every:
            self.initial_eval = self.evaluate(adapter_state(self.model))
            self.progress(f"round 0/{self.cfg.federation.rounds} | {macro_text(self.initial_eval)}")

    def eval_due(self, rnd: int) -> bool:
        """Every ``eval.every`` rounds, and the last round always (also when ``eval.every = 0``)."""
        every = self.cfg.eval.every
        return rnd == self.cfg.federation.rounds or (bool(every) and rnd % every == 0)

    def end_round(
        self, record: dict[str, Any], state: dict[str, np.ndarray], strategy_state: dict[str, Any], line: str
    ) -> None:
        run_dir.append_round(self.out_dir, record)
        save_checkpoint(self.out_dir, record["round"], self.model, state, strategy_state)
        self.progress(line)

    def finish(self, state: dict[str, np.ndarray]) -> dict[str, Any]:
        save_adapter(self.model, state, self.out_dir / "final" / "adapter")
        rounds = run_dir.read_rounds(self.out_dir)
        write_plots(self.out_dir, self.initial_eval, rounds)
        summary = summarise(self.cfg.strategy.name, self.initial_eval, rounds, time.perf_counter() - self.started)
        run_dir.write_summary(self.out_dir, summary)
        self.progress(summary_text(summary, self.out_dir))
        return summary


def macro_text(evaluation: dict[str, dict[str, float]]) -> str:
    """"macro acc 0.412 ± 0.015" for a progress line."""
    return f"macro acc {evaluation['eval']['macro']:.3f} ± {evaluation['eval_se']['macro']:.3f}"
