"""What every run does around its training, federated or centralized.

Seeding, the run directory, the server's copy of the adapter model, held-out
evaluation, the per-round metrics line + checkpoint + progress line, and the
closing artefacts (final adapter, plots, summary) live here once, so the
``centralized`` reference point writes exactly what a federated run writes.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fgrpo.core.config import Config
from fgrpo.data.partitions import test_sets
from fgrpo.models.cpu import torch_threads
from fgrpo.models.devices import placed_on, resolve_device
from fgrpo.models.evaluation import accuracy_by_task, standard_errors
from fgrpo.models.lora import fresh_adapter_model
from fgrpo.models.transport import load_adapter_state
from fgrpo.runtime import run_dir
from fgrpo.runtime.checkpoint import (
    Checkpoint,
    load_checkpoint,
    restore_rng,
    rng_state,
    save_adapter,
    save_checkpoint,
)
from fgrpo.runtime.reports import summarise, summary_text, write_plots
from fgrpo.runtime.round0 import evaluation_key, initial_evaluation
from fgrpo.runtime.tracking import open_tracker
from fgrpo.server.round_reward import macro_text


class RunJournal:
    """One run's directory and evaluation model; call ``start``, ``end_round`` per round,
    ``finish``.

    With ``resume`` the run continues from its latest checkpoint (``resumed``; None if it never
    wrote one, and then it starts over): the adapter, strategy state and RNG state come back, and
    metrics.jsonl is cut back to the checkpoint's round.
    """

    def __init__(
        self, cfg: Config, out_dir: Path, progress: Callable[[str], None], resume: bool = False
    ) -> None:
        self.cfg, self.out_dir, self.progress = cfg, out_dir, progress
        self.started = time.perf_counter()
        random.seed(cfg.seed)  # Flower samples clients with the global `random`
        np.random.seed(cfg.seed)
        self.resumed = load_checkpoint(out_dir) if resume else None
        if self.resumed is None:
            run_dir.prepare(out_dir, cfg)
        else:
            run_dir.write_config(out_dir, cfg)  # the same, except federation.rounds if extended
            run_dir.truncate_metrics(out_dir, self.resumed.metrics_bytes)
        self.model, self.tokenizer = fresh_adapter_model(cfg.model, cfg.seed)
        self.eval_device = resolve_device(cfg.eval.device)
        self.model.to(
            self.eval_device
        )  # a federation's server model only evaluates: it stays there
        self.held_out = test_sets(cfg)
        self.initial_eval = self.resumed.initial_eval if self.resumed else None
        self.run_id = self.resumed.run_id if self.resumed else uuid.uuid4().hex
        # A resumed run is a new session; the one before it ended at the checkpoint's round.
        self.sessions = [*self.resumed.sessions, self.resumed.round] if self.resumed else []
        self.tracker = open_tracker(
            cfg,
            out_dir,
            run_dir.read_versions(out_dir),
            self.resumed.round if self.resumed else None,
        )

    @property
    def next_round(self) -> int:
        return self.resumed.round + 1 if self.resumed else 1

    def evaluate(self, state: dict[str, np.ndarray] | None = None) -> dict[str, dict[str, float]]:
        """Greedy accuracy per task of ``state`` (default: the model's current adapter) and its
        binomial standard errors, as the ``eval`` and ``eval_se`` entries of a metrics line."""
        if state is not None:
            load_adapter_state(self.model, state)
        cfg = self.cfg
        with torch_threads(cfg.eval.threads), placed_on(self.model, self.eval_device):
            accuracy = accuracy_by_task(
                self.model,
                self.tokenizer,
                self.held_out,
                cfg.eval.max_new_tokens,
                cfg.eval.batch_size,
                concurrent_tasks=cfg.eval.concurrent_tasks,
            )
        return {
            "eval": accuracy,
            "eval_se": standard_errors(accuracy, {t: len(r) for t, r in self.held_out.items()}),
        }

    def start(
        self, state: dict[str, np.ndarray], strategy_state: dict[str, Any]
    ) -> dict[str, np.ndarray]:
        """Round-0 evaluation of the starting adapter and the round-0 checkpoint; or, resuming, the
        checkpoint's RNG state. Returns the global adapter the first round starts from."""
        rounds = self.cfg.federation.rounds
        if self.resumed is not None:
            restore_rng(self.resumed.rng)
            self.progress(f"resuming {self.out_dir} after round {self.resumed.round}/{rounds}")
            self.track_round({"round": 0, **(self.initial_eval or {})})
            for record in run_dir.read_rounds(self.out_dir):  # what the trackers missed, if any
                self.track_round(record)
            return self.resumed.adapter
        torch.manual_seed(self.cfg.seed)
        if self.cfg.eval.every:
            load_adapter_state(self.model, state)
            key = evaluation_key(self.model, self.tokenizer, self.held_out, self.cfg.eval)
            self.initial_eval = initial_evaluation(
                key, self.evaluate
            )  # the same for every run of a sweep
            self.progress(f"round 0/{rounds} | {macro_text(self.initial_eval)}")
        self.checkpoint(0, state, strategy_state)
        self.track_round({"round": 0, **(self.initial_eval or {})})
        return state

    def track_round(self, record: dict[str, Any]) -> None:
        if self.tracker is not None:
            self.tracker.log_round(record)

    def checkpoint(
        self, rnd: int, state: dict[str, np.ndarray], strategy_state: dict[str, Any]
    ) -> None:
        save_checkpoint(
            self.out_dir,
            Checkpoint(
                round=rnd,
                adapter=state,
                strategy=strategy_state,
                rng=rng_state(),
                initial_eval=self.initial_eval,
                metrics_bytes=run_dir.metrics_length(self.out_dir),
                run_id=self.run_id,
                sessions=self.sessions,
            ),
            self.model,
        )

    def client_state_info(self) -> dict[str, Any]:
        """What clients need to pick their saved state (fgrpo.client.persistence)."""
        return {"run": self.run_id, "sessions": self.sessions}

    def eval_due(self, rnd: int) -> bool:
        """Every ``eval.every`` rounds, and the last round always (also when ``eval.every = 0``)."""
        every = self.cfg.eval.every
        return rnd == self.cfg.federation.rounds or (bool(every) and rnd % every == 0)

    def end_round(
        self,
        record: dict[str, Any],
        state: dict[str, np.ndarray],
        strategy_state: dict[str, Any],
        line: str,
    ) -> None:
        # Line first, checkpoint second: a crash in between leaves a line the checkpoint does not
        # count, which a resume cuts off and redoes; never a checkpointed round without its line.
        run_dir.append_round(self.out_dir, record)
        self.checkpoint(record["round"], state, strategy_state)
        self.track_round(record)  # after the checkpoint: a resume replays what it missed
        self.progress(line)

    def finish(self, state: dict[str, np.ndarray]) -> dict[str, Any]:
        save_adapter(self.model, state, self.out_dir / "final" / "adapter")
        rounds = run_dir.read_rounds(self.out_dir)
        write_plots(self.out_dir, self.initial_eval, rounds)
        summary = summarise(
            self.cfg.strategy.name, self.initial_eval, rounds, time.perf_counter() - self.started
        )
        run_dir.write_summary(self.out_dir, summary)
        if self.tracker is not None:
            self.tracker.finish()
        self.progress(summary_text(summary, self.out_dir))
        return summary
