"""One client's local training for one round: TRL's GRPOTrainer for K steps.

The trainer is rebuilt every round (fresh optimizer state, as in FedAvg-style
local training); the adapter model it trains is the process-wide cached one.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from statistics import fmean
from typing import Any

import torch
from datasets import Dataset
from peft import PeftModel
from transformers import PreTrainedTokenizerBase, PrinterCallback
from trl import GRPOConfig, GRPOTrainer

from ..config import Config


@dataclass
class RoundStats:
    """What a client reports about its local training (the reply's MetricRecord)."""

    reward: float  # mean total reward over all rollouts of the round
    reward_first: float
    reward_last: float
    completion_length: float
    seconds: float
    steps: int


def grpo_args(cfg: Config, output_dir: str, seed: int, steps: int) -> GRPOConfig:
    on_gpu = torch.cuda.is_available()
    settings: dict[str, Any] = {
        "bf16": on_gpu and torch.cuda.is_bf16_supported(),
        "use_cpu": not on_gpu,
        **cfg.grpo_settings(),
    }
    return GRPOConfig(
        output_dir=output_dir,
        max_steps=steps,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        disable_tqdm=True,
        seed=seed,
        data_seed=seed,
        **settings,
    )


def stats_from_log(log_history: list[dict[str, Any]], seconds: float) -> RoundStats:
    steps = [entry for entry in log_history if "reward" in entry]
    if not steps:
        raise RuntimeError("GRPO training logged no reward; did it run any step?")
    rewards = [float(e["reward"]) for e in steps]
    return RoundStats(
        reward=fmean(rewards),
        reward_first=rewards[0],
        reward_last=rewards[-1],
        completion_length=fmean(float(e.get("completions/mean_length", 0.0)) for e in steps),
        seconds=seconds,
        steps=len(steps),
    )


def train_locally(
    model: PeftModel,
    tokenizer: PreTrainedTokenizerBase,
    dataset: Dataset,
    reward_funcs: list[Any],
    cfg: Config,
    seed: int,
    steps: int,
    trainer_cls: type[GRPOTrainer] = GRPOTrainer,
    **trainer_kwargs: Any,
) -> RoundStats:
    """Run ``steps`` GRPO steps on ``dataset``, updating ``model``'s adapter in place."""
    model.train()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fgrpo-client-") as scratch:
        trainer = trainer_cls(
            model=model,
            reward_funcs=reward_funcs,
            args=grpo_args(cfg, scratch, seed, steps),
            train_dataset=dataset,
            processing_class=tokenizer,
            **trainer_kwargs,
        )
        trainer.remove_callback(PrinterCallback)  # per-step dicts; the server prints a round line
        trainer.train()
    model.eval()
    return stats_from_log(trainer.state.log_history, time.perf_counter() - started)
