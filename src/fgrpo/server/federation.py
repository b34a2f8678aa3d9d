"""The server's round loop: sample, send, receive, screen, aggregate, evaluate, log, checkpoint.

We drive Flower's strategy API (configure_train / aggregate_train) ourselves
rather than calling ``Strategy.start`` so that every round leaves a metrics line
and a checkpoint, and a faulty update is screened out before it can touch the
global adapter.
"""

from __future__ import annotations

import logging
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from flwr.app import ConfigRecord, Message
from flwr.serverapp import Grid

from ..client.app import CONFIG_KEY
from ..config import Config
from ..data import test_sets
from ..evaluation import accuracy_by_task
from ..experiments.reports import summarise, summary_text, write_plots
from ..models.lora import fresh_adapter_model
from ..models.transport import adapter_state, from_arrayrecord, load_adapter_state, to_arrayrecord
from . import run_dir
from .checkpoint import save_adapter, save_checkpoint
from .strategies import CENTRALIZED, build_strategy
from .strategies.weighted import data_size_ledger, read_report

log = logging.getLogger("fgrpo")


def screen_replies(replies: list[Message]) -> tuple[list[Message], list[dict[str, Any]]]:
    """Keep replies with a usable fp32 adapter; report the rest as failures.

    bf16 transport is widened here, so every strategy aggregates fp32 arrays.
    """
    kept, failures = [], []
    for reply in replies:
        node = reply.metadata.src_node_id
        if reply.has_error():
            failures.append({"node": node, "reason": reply.error.reason})
            continue
        try:
            content = reply.content
            array_key = "arrays" if "arrays" in content.array_records else next(iter(content.array_records))
            state = from_arrayrecord(content[array_key])
            bad = [k for k, v in state.items() if not np.all(np.isfinite(v))]
            if bad:
                raise ValueError(f"non-finite values in {bad[0]}")
            report = read_report(content)
            if not np.isfinite(report.reward) or report.num_examples <= 0:
                raise ValueError(f"bad metrics: reward={report.reward}, num-examples={report.num_examples}")
        except (KeyError, ValueError, StopIteration) as err:
            failures.append({"node": node, "reason": f"rejected update: {err}"})
            continue
        content[array_key] = to_arrayrecord(state, "fp32")
        kept.append(reply)
    return kept, failures


def run_federation(grid: Grid, cfg: Config, out_dir: Path, progress: Any = None) -> dict[str, Any]:
    """Run all rounds; write the run directory; return the summary."""
    progress = progress or (lambda line: print(line, file=sys.stdout, flush=True))
    if cfg.strategy.name == CENTRALIZED:  # reference point: no federation (e.g. under `flwr run .`)
        from .centralized import run_centralized

        return run_centralized(cfg, out_dir, progress)
    started = time.perf_counter()
    random.seed(cfg.seed)  # Flower samples clients with the global `random`
    np.random.seed(cfg.seed)
    run_dir.prepare(out_dir, cfg)
    strategy = build_strategy(cfg)
    model, tokenizer = fresh_adapter_model(cfg.model, cfg.seed)
    state = adapter_state(model)
    held_out = test_sets(cfg)

    def evaluate(weights: dict[str, np.ndarray]) -> dict[str, float]:
        load_adapter_state(model, weights)
        return accuracy_by_task(model, tokenizer, held_out, cfg.eval.max_new_tokens, cfg.eval.batch_size)

    torch.manual_seed(cfg.seed)
    initial_eval = evaluate(state) if cfg.eval.every else None
    if initial_eval:
        progress(f"round 0/{cfg.federation.rounds} | macro acc {initial_eval['macro']:.3f}")

    for rnd in range(1, cfg.federation.rounds + 1):
        round_start = time.perf_counter()
        messages = strategy.configure_train(rnd, to_arrayrecord(state), ConfigRecord({CONFIG_KEY: cfg.to_json()}), grid)
        replies, failures = screen_replies(list(grid.send_and_receive(messages)))
        aggregated, train_metrics = strategy.aggregate_train(rnd, replies) if replies else (None, None)
        if aggregated is not None:
            state = from_arrayrecord(aggregated)
        # This round's ledger only: the weights the strategy actually used (an earlier round's must not leak in).
        if not replies:
            ledger = []
        elif hasattr(strategy, "ledger"):
            ledger = strategy.ledger
        else:
            ledger = data_size_ledger([r.content for r in replies])
        record: dict[str, Any] = {
            "round": rnd,
            "clients": ledger,
            "failures": failures,
            "train": dict(train_metrics) if train_metrics else {},
        }
        if cfg.eval.every and (rnd % cfg.eval.every == 0 or rnd == cfg.federation.rounds):
            record["eval"] = evaluate(state)
        record["seconds"] = round(time.perf_counter() - round_start, 2)
        run_dir.append_round(out_dir, record)
        save_checkpoint(out_dir, rnd, model, state, strategy.state_dict() if hasattr(strategy, "state_dict") else {})
        progress(round_line(rnd, cfg.federation.rounds, record))

    save_adapter(model, state, out_dir / "final" / "adapter")
    rounds = run_dir.read_rounds(out_dir)
    write_plots(out_dir, initial_eval, rounds)
    summary = summarise(cfg.strategy.name, initial_eval, rounds, time.perf_counter() - started)
    run_dir.write_summary(out_dir, summary)
    progress(summary_text(summary, out_dir))
    return summary


def round_line(rnd: int, total: int, record: dict[str, Any]) -> str:
    clients = record["clients"]
    parts = [f"round {rnd}/{total}", f"clients {len(clients)}"]
    if clients:
        parts.append(f"reward {np.mean([c['reward'] for c in clients]):.3f}")
        parts.append("weights " + " ".join(f"{c['weight']:.2f}" for c in clients))
    if record["failures"]:
        parts.append(f"failures {len(record['failures'])}")
    if "eval" in record:
        parts.append(f"macro acc {record['eval']['macro']:.3f}")
    parts.append(f"{record['seconds']:.1f}s")
    return " | ".join(parts)
