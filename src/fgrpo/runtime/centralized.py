"""The ``centralized`` reference point: one GRPOTrainer on the pooled data of all clients.

It gets the same total number of local steps as the federation would take, and the same
learning-rate shape (``federation.lr_schedule``, constant within each round-equivalent):
rounds x local_steps x clients-per-round (clients per round as Flower samples them:
max(int(num_clients * fraction_train), min_clients)), with one client's torch threads
(``federation.client_cpus``). Every local_steps x clients-per-round
steps count as one "round": a metrics.jsonl line (one ledger row, client-id ``centralized``,
weight 1), an evaluation every eval.every rounds and at the end, and a checkpoint. The
run directory has the same artefacts as a federated run. No Flower is involved.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from fgrpo.client.grpo import RoundScheduledGRPOTrainer, stats_from_log, train_locally
from fgrpo.client.signal import RolloutRecorder, per_task_means
from fgrpo.core.config import Config
from fgrpo.data.probe_rows import pooled_training_rows
from fgrpo.models.cpu import torch_threads
from fgrpo.models.transport import adapter_state
from fgrpo.runtime.journal import RunJournal
from fgrpo.server.round_reward import macro_text, round_reward, train_reward
from fgrpo.server.strategies.weighted import ClientReport, ledger_row
from fgrpo.tasks.rewards import function_weights, reward_functions, reward_ranges

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

    def __init__(
        self, steps_per_round: int, on_round: Callable[[int, list[dict[str, Any]]], None]
    ) -> None:
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


def run_centralized(
    cfg: Config, out_dir: Path, progress: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Train centrally; write metrics.jsonl, summary.json, plots, checkpoint/ and final/adapter."""
    journal = RunJournal(cfg, out_dir, progress or print)
    model, tokenizer = journal.model, journal.tokenizer
    pool = pooled_training_rows(cfg)  # the rows the clients train on together
    per_round, steps = total_steps(cfg)
    rounds = cfg.federation.rounds
    journal.start(adapter_state(model), {"steps": 0})
    clock = {"round": time.perf_counter(), "rollouts": 0}
    tally = RolloutRecorder(reward_functions(cfg), skip_steps=0, weights=function_weights(cfg))
    ranges = reward_ranges(cfg)

    def on_round(rnd: int, logged: list[dict[str, Any]]) -> None:
        stats = stats_from_log(logged, time.perf_counter() - clock["round"])
        this_round = tally.rollouts[clock["rollouts"] :]  # the round-equivalent's rollouts only
        clock["rollouts"] = len(tally.rollouts)
        by_task = per_task_means([t for _, t, _ in this_round], [r for _, _, r in this_round])
        report = ClientReport(
            client_id=CLIENT_ID,
            num_examples=len(pool),
            reward=stats.reward,
            metrics={},
            signals={},
            task_rewards={t: (m, float(n)) for t, (m, n) in by_task.items()},
        )
        record: dict[str, Any] = {
            "round": rnd,
            "clients": [ledger_row(report, 1.0, steps=stats.steps)],
            "failures": [],
            "train": {
                "reward": stats.reward,
                "reward-first": stats.reward_first,
                "reward-last": stats.reward_last,
                "completion-length": stats.completion_length,
            },
        }
        reward = round_reward(record["clients"], ranges)
        if reward is not None:
            record["reward"] = reward
        if journal.eval_due(rnd):
            record.update(journal.evaluate())
            model.train()
        record["seconds"] = round(time.perf_counter() - clock["round"], 2)
        journal.end_round(
            record,
            adapter_state(model),
            {"steps": rnd * per_round},
            _round_line(rnd, rounds, record),
        )
        clock["round"] = time.perf_counter()

    journal.progress(
        f"centralized: {steps} GRPO steps on {len(pool)} pooled prompts ({per_round} per round-equivalent)"
    )
    with torch_threads(cfg.federation.client_cpus):  # the threads one client trains with
        train_locally(
            model,
            tokenizer,
            pool,
            tally.reward_funcs,
            cfg,
            seed=cfg.seed,
            steps=steps,
            trainer_cls=RoundScheduledGRPOTrainer,
            learning_rate=cfg.round_learning_rate(1),
            lr_by_round=cfg.round_learning_rate,
            steps_per_round=per_round,
            callbacks=[RoundBoundaries(per_round, on_round)],
        )
    return journal.finish(adapter_state(model))


def _round_line(rnd: int, total: int, record: dict[str, Any]) -> str:
    reward = train_reward(record)
    parts = [
        f"round {rnd}/{total}",
        "centralized",
        *([f"reward {reward:.3f}"] if reward is not None else []),
    ]
    if "eval" in record:
        parts.append(macro_text(record))
    parts.append(f"{record['seconds']:.1f}s")
    return " | ".join(parts)
