"""The server's round loop: sample, send, receive, screen, aggregate, evaluate, log, checkpoint.

We drive Flower's strategy API (configure_train / aggregate_train) ourselves
rather than calling ``Strategy.start`` so that every round leaves a metrics line
and a checkpoint, and a faulty update is screened out before it can touch the
global adapter.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from flwr.app import ConfigRecord, Message
from flwr.serverapp import Grid

from fgrpo.core.config import Config
from fgrpo.core.protocol import (
    CLIENT_STATE_KEY,
    CLIENT_STEPS_KEY,
    CONFIG_KEY,
    LEARNING_RATE_KEY,
    array_bytes,
    client_state_record,
)
from fgrpo.models.transport import adapter_state, to_arrayrecord
from fgrpo.server.aggregation import aggregate_round, reply_screen
from fgrpo.server.lora_aggregation import BaseResidual, PersonalFactors
from fgrpo.server.round_reward import macro_text, round_reward, train_reward
from fgrpo.server.screening import claimed_client_id, missing_replies
from fgrpo.server.strategies import build_strategy, strategy_entry
from fgrpo.tasks.rewards import reward_ranges


def round_config(cfg: Config, rnd: int) -> ConfigRecord:
    """What every client of round ``rnd`` is told: the run's recipe and the round's learning
    rate."""
    return ConfigRecord(
        {CONFIG_KEY: cfg.to_json(), LEARNING_RATE_KEY: cfg.round_learning_rate(rnd)}
    )


class RoundJournal(Protocol):
    """What the round loop needs of the run directory it writes (fgrpo.runtime.journal.RunJournal
    is the one the runtime passes in): where to resume, evaluation, and the per-round record."""

    model: Any
    resumed: Any
    next_round: int

    def start(self, adapter: dict[str, Any], strategy_state: dict[str, Any]) -> dict[str, Any]: ...
    def client_state_info(self) -> dict[str, Any]: ...
    def eval_due(self, rnd: int) -> bool: ...
    def evaluate(self, state: dict[str, Any] | None = None) -> dict[str, Any]: ...
    def end_round(
        self, record: dict[str, Any], state: Any, strategy_state: dict[str, Any], line: str
    ) -> None: ...
    def finish(self, state: Any) -> dict[str, Any]: ...


def federate(
    grid: Grid,
    cfg: Config,
    journal: RoundJournal,
    clients_dir: Path | None = None,
    round_started: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Run all rounds (those after the journal's checkpoint when it resumed), recording each in
    ``journal``; return the run's summary. ``clients_dir``: where simulated clients keep their
    state between rounds; ``round_started(round, clients sampled)``: told as each round's messages
    go out."""
    entry = strategy_entry(cfg.strategy.name)
    strategy = build_strategy(cfg)
    residual = BaseResidual(cfg, journal.model)  # model.lora_aggregation = "exact"
    personal = PersonalFactors(cfg)  # model.lora_aggregation = "fedsa"
    if journal.resumed is not None:
        strategy.load_state_dict(personal.restore(residual.restore(journal.resumed.strategy)))
    state = journal.start(adapter_state(journal.model), strategy.state_dict())
    client_state = client_state_record(journal.client_state_info(), clients_dir)
    client_of_node: dict[int, str] = {}  # learnt from replies, to name the clients that fail later

    ranges = reward_ranges(cfg)
    for rnd in range(journal.next_round, cfg.federation.rounds + 1):
        round_start = time.perf_counter()
        config = round_config(cfg, rnd)
        config[CLIENT_STATE_KEY] = client_state
        personal.ask(config, journal.eval_due(rnd))
        shared = personal.shared(state)  # what the strategy sees: all of θ, or fedsa's A
        messages = list(strategy.configure_train(rnd, to_arrayrecord(shared), config, grid))
        residual.attach(messages)
        if round_started is not None:
            round_started(rnd, len(messages))
        timeout = cfg.federation.round_timeout or None
        sent_bytes = sum(array_bytes(m.content) for m in messages)
        # sending gives each message its id
        received = list(grid.send_and_receive(messages, timeout=timeout))
        received_bytes = sum(array_bytes(r.content) for r in received if not r.has_error())
        addressees = {m.metadata.message_id: m.metadata.dst_node_id for m in messages}
        screen = reply_screen(strategy, cfg, shared, personal.templates(state))
        replies, failures = screen.screen(received, addressees)
        replies.sort(key=lambda r: claimed_client_id(r.content))  # arrival order must not matter
        failures += missing_replies(addressees, received, timeout)
        name_failures(failures, received, client_of_node)
        personal.collect(replies)  # fedsa: each B_k kept, and taken out before the strategy sees it
        outcome = aggregate_round(strategy, rnd, replies, shared, cfg.federation.min_clients)
        residual.after_round(state, outcome.state, replies, outcome.ledger)
        state = {**state, **outcome.state}
        record: dict[str, Any] = {
            "round": rnd,
            "aggregated": outcome.aggregated,  # False: the global adapter is unchanged, "reason" says why
            **({"reason": outcome.reason} if outcome.reason else {}),
            "clients": outcome.ledger,  # the weight each client actually had in the aggregate
            "failures": failures,
            "train": outcome.train,
            "bytes": {  # arrays on the wire: the adapter (and residual, variates) each way
                "sent": sent_bytes,
                "received": received_bytes,  # as they came (screening rebuilds the replies)
            },
        }
        if steps := client_steps(replies):  # tracking.client_steps
            record[CLIENT_STEPS_KEY] = steps
        reward = round_reward(outcome.ledger, ranges)
        if (
            reward is not None
        ):  # the round's reward (fgrpo.server.round_reward), as console and plots
            record["reward"] = reward
        if journal.eval_due(rnd) and (by_client := client_evaluation(entry, strategy, personal)):
            record["local"] = by_client(state, journal.evaluate)  # each client's own adapter
            record["eval"], record["eval_se"] = (
                record["local"]["mean"]["global"],
                record["local"]["mean"]["global_se"],
            )
        elif journal.eval_due(rnd):
            record.update(journal.evaluate(state))
        record["seconds"] = round(time.perf_counter() - round_start, 2)
        strategy_state = personal.checkpointed(residual.checkpointed(strategy.state_dict()))
        journal.end_round(
            record, state, strategy_state, round_line(rnd, cfg.federation.rounds, record)
        )

    return journal.finish(state)


def client_evaluation(entry: Any, strategy: Any, personal: PersonalFactors) -> Callable | None:
    """How a round evaluates each client's own model (local-only's adapters, fedsa's Ā + B_k), or
    None: the global adapter is what is scored."""
    if entry.evaluation == "clients" and strategy.client_models:
        return lambda state, evaluate: strategy.evaluate_clients(evaluate)
    if personal.on and personal.b:
        return personal.evaluate
    return None


def client_steps(replies: list[Message]) -> dict[str, dict[str, list[float]]]:
    """{client: {TRL key: value at each local step}} from the replies that carry it; what is not
    a list of numbers is left out (it is only logged)."""
    out = {}
    for reply in replies:
        record = reply.content.config_records.get(CLIENT_STEPS_KEY)
        if record is None:
            continue
        series = {
            str(k): [float(x) for x in v]
            for k, v in record.items()
            if isinstance(v, list) and all(isinstance(x, int | float) for x in v)
        }
        out[str(claimed_client_id(reply.content))] = series
    return out


def name_failures(
    failures: list[dict[str, Any]], received: list[Message], client_of_node: dict[int, str]
) -> None:
    """Name each failure's client: by the id its reply claimed, else by the id its node gave in this
    or an earlier round (an error reply or a missing one carries none)."""
    for reply in received:
        client_id = None if reply.has_error() else claimed_client_id(reply.content)
        if client_id is not None:
            client_of_node[reply.metadata.src_node_id] = client_id
    for failure in failures:
        failure["client-id"] = failure.get("client-id") or client_of_node.get(failure["node"])


def failure_text(failure: dict[str, Any], limit: int = 240) -> str:
    """One failure as the console shows it: who, what kind, and the client's own reason (a reward
    function's name and error, say), cut to ``limit`` characters."""
    reason = " ".join(str(failure.get("reason") or "").split())
    reason = reason if len(reason) <= limit else reason[: limit - 1] + "…"
    return (
        f"node {failure['node']} ({failure['client-id'] or 'client unknown'}): {failure['kind']}"
        + (f" ({reason})" if reason else "")
    )


def round_line(rnd: int, total: int, record: dict[str, Any]) -> str:
    clients = record["clients"]
    parts = [f"round {rnd}/{total}", f"clients {len(clients)}"]
    if train_reward(record) is not None:
        parts.append(
            f"reward {train_reward(record):.3f}"
        )  # of each task's range: metrics.jsonl's reward.normalised, as plotted
    if clients:
        parts.append(
            "weights "
            + " ".join(
                f"{c['client-id']} {c['weight']:.2f}"
                for c in sorted(clients, key=lambda c: c["client-id"])
            )
        )
    if not record.get("aggregated", True):
        parts.append(f"NOT aggregated ({record['reason']}): global adapter unchanged")
    if record["failures"]:
        parts.append("failures " + ", ".join(failure_text(f) for f in record["failures"]))
    if "eval" in record:
        parts.append(macro_text(record))
    parts.append(f"{record['seconds']:.1f}s")
    return " | ".join(parts)
