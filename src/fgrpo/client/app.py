"""The ClientApp: one federated GRPO round per train message.

The server's message carries the global adapter and the resolved run config
(JSON in the ConfigRecord), so every client trains with the server's recipe.
The reply is the new adapter plus a MetricRecord (numbers only) and a
ConfigRecord holding the client's stable id.
"""

from __future__ import annotations

import json
import warnings
from functools import lru_cache

import torch
from flwr.app import ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from fgrpo.client.algorithms import plan_round, start_adapter
from fgrpo.client.failure import reports_failure
from fgrpo.client.grpo import train_locally, training_device
from fgrpo.client.optimizer_state import KeptOptimizer
from fgrpo.client.persistence import state_store
from fgrpo.client.personal_lora import finish_round, start_state
from fgrpo.client.privacy import clip_when_asked
from fgrpo.client.progress import route_output_to_run_log, step_reporters
from fgrpo.client.signal import RolloutRecorder, plan_signal
from fgrpo.core.config import Config
from fgrpo.core.config_load import parse_config
from fgrpo.core.protocol import (
    BASE_RESIDUAL_KEY,
    CLIENT_STATE_KEY,
    CLIENT_STEPS_KEY,
    CONFIG_KEY,
    LEARNING_RATE_KEY,
    SIGNAL_REQUEST_KEY,
    SIGNALS_RECORD_KEY,
    TASK_REWARDS_KEY,
    task_reward_record,
)
from fgrpo.data.partitions import node_training_config
from fgrpo.data.probe_rows import client_rows
from fgrpo.models.lora import cached_adapter_model
from fgrpo.models.lora_modes import set_base_residual, set_trained_factors
from fgrpo.models.transport import adapter_state, from_arrayrecord, load_adapter_state, reply_record
from fgrpo.tasks.rewards import function_weights, reward_functions

app = ClientApp()


@lru_cache(maxsize=4)
def _parse_config(text: str) -> Config:
    # validated by the server that sent it; its data paths are the server's, not this node's
    return parse_config(json.loads(text))


def client_identity(context: Context) -> tuple[int, str]:
    """(partition id, stable client id). Deployed nodes name themselves via node_config
    ``client-id``; a node without one (nor a partition id) is named after its node id."""
    node_config = context.node_config
    partition_id = int(node_config.get("partition-id", 0))
    fallback = (
        f"client-{partition_id}" if "partition-id" in node_config else f"node-{context.node_id}"
    )
    return partition_id, str(node_config.get("client-id", fallback))


def round_seed(cfg: Config, server_round: int, partition_id: int) -> int:
    return cfg.seed * 1_000_003 + server_round * 1_009 + partition_id


def lr_scale(cfg: Config, partition_id: int) -> float:
    """This client's multiplier of the round's learning rate: ``federation.client_lr_scale``, a
    testing and benchmark knob (e.g. 0 for a stalled client); 1 for unlisted clients."""
    return cfg.federation.client_lr_scale.get(str(partition_id), 1.0)


@app.train(mods=[clip_when_asked])  # privacy.dp = "client-fixed": Flower's fixedclipping_mod
@reports_failure(lambda context: client_identity(context)[1])
def train(msg: Message, context: Context) -> Message:
    route_output_to_run_log()  # under `fgrpo run`: this worker's library chatter goes to run.log
    warnings.filterwarnings(
        "ignore", category=FutureWarning
    )  # transformers v6 renames; not ours to fix
    cfg = _parse_config(str(msg.content["config"][CONFIG_KEY]))
    server_round = int(msg.content["config"]["server-round"])
    learning_rate = float(msg.content["config"][LEARNING_RATE_KEY])
    partition_id, client_id = client_identity(context)
    cfg = node_training_config(
        cfg, context.node_config
    )  # a node's own data-config: its source, its rewards
    rows = client_rows(
        cfg, partition_id, context.node_config
    )  # the owner's file, or the simulated partition
    torch.set_num_threads(max(1, int(cfg.federation.client_cpus)))
    store = state_store(msg.content["config"].get(CLIENT_STATE_KEY), context.node_config, client_id)
    if store is not None:  # a resumed run starts with an empty context.state
        store.restore(context.state, server_round)

    model, tokenizer = cached_adapter_model(cfg.model)
    # TRL would move it there only inside the trainer: after the probe's "before" measurement (whose
    # common random numbers must pair with the "after" one) and the FedProx and SCAFFOLD hooks
    model.to(training_device())
    # model.lora_aggregation: the base weights the server's model has (exact), the factors to train
    residual = msg.content.array_records.get(BASE_RESIDUAL_KEY)
    set_base_residual(model, from_arrayrecord(residual) if residual is not None else {})
    set_trained_factors(model, cfg.model.lora_aggregation, server_round)
    mode = cfg.model.lora_aggregation
    received = start_adapter(msg, context)  # global, or local-only's own adapter
    load_adapter_state(model, start_state(mode, received, context.state, adapter_state(model)))
    tally = RolloutRecorder(
        reward_functions(cfg), skip_steps=0, weights=function_weights(cfg)
    )  # the round's reward per task
    # FGRPO's signal (asked for in the message); the training rows are the same whatever it asks
    signal = plan_signal(
        msg.content["config"].get(SIGNAL_REQUEST_KEY),
        cfg,
        partition_id,
        rows,
        tally.reward_funcs,
        (model, tokenizer),
        context.state,
    )
    plan = plan_round(
        msg, context, model, client_id, signal.dataset
    )  # FedProx / SCAFFOLD / local-only hooks
    reporters = step_reporters(
        client_id, server_round, cfg.federation.local_steps
    )  # `fgrpo run`'s progress display
    plan.trainer_kwargs.setdefault("callbacks", []).extend(reporters)
    if cfg.federation.optimizer_state == "keep":  # AdamW's moments from this client's last round
        plan.trainer_kwargs["callbacks"].append(KeptOptimizer(context.state, model))
    stats = train_locally(
        model,
        tokenizer,
        signal.dataset,
        signal.reward_funcs,
        cfg,
        seed=round_seed(cfg, server_round, partition_id),
        steps=cfg.federation.local_steps,
        trainer_cls=plan.trainer_cls,
        learning_rate=learning_rate * lr_scale(cfg, partition_id),
        **plan.trainer_kwargs,
    )
    metrics = {
        "num-examples": len(signal.dataset),
        "reward": stats.reward,
        "reward-first": stats.reward_first,
        "reward-last": stats.reward_last,
        "completion-length": stats.completion_length,
        "train-seconds": stats.seconds,
        "generate-seconds": stats.generate_seconds,
        **plan.metrics,
    }
    reply, personal = finish_round(
        mode, adapter_state(model), context.state, msg.content["config"], signal.dataset
    )  # fedsa: B stays here
    content = RecordDict(
        {
            "arrays": reply_record(
                reply, from_arrayrecord(msg.content["arrays"]), cfg.model.transport_dtype
            ),
            "metrics": MetricRecord(metrics),
            "client": ConfigRecord({"client-id": client_id}),
        }
    )
    if (
        tally.rollouts and cfg.strategy.baseline_at != "client"
    ):  # client-side baselines: per-task rewards stay home
        content[TASK_REWARDS_KEY] = ConfigRecord(task_reward_record(tally.signals()))
    if signal.measure is not None:
        content[SIGNALS_RECORD_KEY] = ConfigRecord(signal.measure())
    for key, record in plan.finish(
        model
    ).items():  # e.g. SCAFFOLD's delta c_i, local-only's task mix
        content[key] = record
    for key, record in personal.items():
        content[key] = record
    if cfg.tracking.client_steps:  # TRL's log of every local step, for the server's trackers
        content[CLIENT_STEPS_KEY] = ConfigRecord(stats.by_step)
    if store is not None:
        store.save(context.state, server_round)
    return Message(content=content, reply_to=msg)
