"""The server's round loop: sample, send, receive, screen, aggregate, evaluate, log, checkpoint.

We drive Flower's strategy API (configure_train / aggregate_train) ourselves
rather than calling ``Strategy.start`` so that every round leaves a metrics line
and a checkpoint, and a faulty update is screened out before it can touch the
global adapter.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import ConfigRecord, Message
from flwr.serverapp import Grid

from ..client.app import CONFIG_KEY, LEARNING_RATE_KEY
from ..client.persistence import CLIENT_STATE_KEY, client_state_record
from ..config import Config
from ..models.transport import adapter_state, from_arrayrecord, received_adapter, to_arrayrecord
from .journal import RunJournal, macro_text
from .strategies import CENTRALIZED, build_strategy
from .strategies.local_only import LocalOnly
from .strategies.weighted import read_report


def screen_replies(
    replies: list[Message], sent: dict[str, np.ndarray], addressees: dict[str, int] | None = None
) -> tuple[list[Message], list[dict[str, Any]]]:
    """Keep replies with a usable fp32 adapter; report the rest as failures.

    The adapter is rebuilt against ``sent`` (lossy transport carries θ_k − θ) and widened
    to fp32 here, so every strategy aggregates fp32 adapters. Each kept reply's metrics
    gain ``update-norm`` = ‖θ_k − θ‖. ``addressees`` maps sent message ids to their node:
    an error reply for a lost node comes from the SuperLink, not from that node.
    """
    kept, failures = [], []
    for reply in replies:
        node = (addressees or {}).get(reply.metadata.reply_to_message_id, reply.metadata.src_node_id)
        if reply.has_error():
            failures.append({"node": node, "reason": reply.error.reason})
            continue
        try:
            content = reply.content
            array_key = "arrays" if "arrays" in content.array_records else next(iter(content.array_records))
            state = received_adapter(content[array_key], sent)
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
        if set(state) == set(sent):
            norm = np.sqrt(sum(float(((state[k] - sent[k]) ** 2).sum()) for k in state))
            next(iter(content.metric_records.values()))["update-norm"] = norm
        kept.append(reply)
    return kept, failures


def round_config(cfg: Config, rnd: int) -> ConfigRecord:
    """What every client of round ``rnd`` is told: the run's recipe and the round's learning rate."""
    return ConfigRecord({CONFIG_KEY: cfg.to_json(), LEARNING_RATE_KEY: cfg.round_learning_rate(rnd)})


def run_federation(
    grid: Grid, cfg: Config, out_dir: Path, progress: Any = None, resume: bool = False, clients_dir: Path | None = None
) -> dict[str, Any]:
    """Run all rounds (with ``resume``, those after the run's checkpoint); write the run directory;
    return the summary. ``clients_dir``: where simulated clients keep their state between rounds."""
    progress = progress or (lambda line: print(line, file=sys.stdout, flush=True))
    if cfg.strategy.name == CENTRALIZED:  # reference point: no federation (e.g. under `flwr run .`)
        from .centralized import run_centralized

        return run_centralized(cfg, out_dir, progress)
    journal = RunJournal(cfg, out_dir, progress, resume)
    strategy = build_strategy(cfg)
    if journal.resumed is not None:
        strategy.load_state_dict(journal.resumed.strategy)
    state = journal.start(adapter_state(journal.model), strategy.state_dict())
    client_state = client_state_record(journal.client_state_info(), clients_dir)
    client_of_node: dict[int, str] = {}  # learnt from replies, to name the clients that fail later

    for rnd in range(journal.next_round, cfg.federation.rounds + 1):
        round_start = time.perf_counter()
        config = round_config(cfg, rnd)
        config[CLIENT_STATE_KEY] = client_state
        messages = list(strategy.configure_train(rnd, to_arrayrecord(state), config, grid))
        received = list(grid.send_and_receive(messages))  # sending gives each message its id
        replies, failures = screen_replies(received, state, {m.metadata.message_id: m.metadata.dst_node_id for m in messages})
        replies.sort(key=lambda r: read_report(r.content).client_id)  # arrival order must not change the sums
        name_failures(failures, replies, client_of_node)
        aggregated, train_metrics = strategy.aggregate_train(rnd, replies) if replies else (None, None)
        if aggregated is not None:
            state = from_arrayrecord(aggregated)
        # Every registry strategy records the weights it actually used for this round's replies;
        # a round with no replies never reached aggregate_train, so an earlier ledger must not leak in.
        ledger = strategy.ledger if replies else []
        record: dict[str, Any] = {
            "round": rnd,
            "clients": ledger,
            "failures": failures,
            "train": dict(train_metrics) if train_metrics else {},
        }
        if journal.eval_due(rnd) and isinstance(strategy, LocalOnly) and strategy.client_models:
            record["local"] = strategy.evaluate_clients(journal.evaluate)  # each client's own adapter
            record["eval"], record["eval_se"] = record["local"]["mean"]["global"], record["local"]["mean"]["global_se"]
        elif journal.eval_due(rnd):
            record.update(journal.evaluate(state))
        record["seconds"] = round(time.perf_counter() - round_start, 2)
        journal.end_round(record, state, strategy.state_dict(), round_line(rnd, cfg.federation.rounds, record))

    return journal.finish(state)


def name_failures(failures: list[dict[str, Any]], replies: list[Message], client_of_node: dict[int, str]) -> None:
    """Add the client id to each failure whose node has replied in this or an earlier round."""
    client_of_node.update({r.metadata.src_node_id: read_report(r.content).client_id for r in replies})
    for failure in failures:
        failure["client-id"] = client_of_node.get(failure["node"])


def round_line(rnd: int, total: int, record: dict[str, Any]) -> str:
    clients = record["clients"]
    parts = [f"round {rnd}/{total}", f"clients {len(clients)}"]
    if clients:
        parts.append(f"reward {np.mean([c['reward'] for c in clients]):.3f}")
        parts.append("weights " + " ".join(f"{c['client-id']} {c['weight']:.2f}" for c in sorted(clients, key=lambda c: c["client-id"])))
    if record["failures"]:
        parts.append(f"failures {len(record['failures'])}")
    if "eval" in record:
        parts.append(macro_text(record))
    parts.append(f"{record['seconds']:.1f}s")
    return " | ".join(parts)
