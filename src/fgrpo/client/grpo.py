"""One client's local training for one round: TRL's GRPOTrainer for K steps.

The trainer is rebuilt every round (fresh optimizer state, as in FedAvg-style
local training); the adapter model it trains is the process-wide cached one, and
what the trainer patches onto it is undone when the round ends.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from statistics import fmean
from typing import Any

import torch
from datasets import Dataset
from peft import PeftModel
from transformers import PreTrainedTokenizerBase, PrinterCallback
from trl import GRPOConfig, GRPOTrainer

from fgrpo.core.config import Config
from fgrpo.models.group_prefill import group_prefill
from fgrpo.models.lm_head import score_completions_only
from fgrpo.models.patches import generate_wrapped, restored_after
from fgrpo.tasks.reward_probe import batch_shape


@dataclass
class RoundStats:
    """What a client reports about its local training (the reply's MetricRecord)."""

    reward: float  # mean total reward over all rollouts of the round
    reward_first: float
    reward_last: float
    completion_length: float
    seconds: float
    steps: int
    generate_seconds: float = 0.0  # of ``seconds``: sampling the rollouts (model.generate)
    by_step: dict[str, list[float]] = field(default_factory=dict)  # TRL's logged values per step


def training_device() -> torch.device:
    """Where TRL's trainer puts the model (``grpo_args``: the GPU when there is one, else the CPU).

    The trainer moves the model there only once it is built; whatever a round prepares before
    (the probe's first measurement, FedProx's anchor) must happen there too (fgrpo.client.app)."""
    return (
        torch.device("cuda", torch.cuda.current_device())
        if torch.cuda.is_available()
        else torch.device("cpu")
    )


def placed_like(
    tensors: dict[str, torch.Tensor], params: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """``tensors`` on the device and in the dtype of the parameter of the same name (``.to`` is a
    no-op where they already are): a hook planned before the trainer moved the model follows it."""
    return {k: t.to(device=params[k].device, dtype=params[k].dtype) for k, t in tensors.items()}


def grpo_args(
    cfg: Config, output_dir: str, seed: int, steps: int, learning_rate: float | None = None
) -> GRPOConfig:
    """TRL's GRPOConfig for ``steps`` local steps; ``learning_rate`` is the round's
    (fgrpo.core.schedule)."""
    on_gpu = training_device().type == "cuda"
    settings: dict[str, Any] = {
        "bf16": on_gpu and torch.cuda.is_bf16_supported(),
        "use_cpu": not on_gpu,
        **cfg.grpo_settings(),
    }
    if learning_rate is not None:
        settings["learning_rate"] = learning_rate
    return GRPOConfig(**fixed_grpo_args(output_dir, seed, steps), **settings)


def fixed_grpo_args(output_dir: str, seed: int, steps: int) -> dict[str, Any]:
    """The GRPOConfig arguments fgrpo sets itself for a round; grpo.* cannot override them."""
    return {
        "output_dir": output_dir,
        "max_steps": steps,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": [],
        "disable_tqdm": True,
        "seed": seed,
        "data_seed": seed,
    }


def prompts_per_step(settings: dict[str, Any]) -> int:
    """Distinct prompts one GRPO step samples (each gets num_generations completions)."""
    return batch_shape(settings)[0]


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
        by_step=per_step(steps),
    )


def per_step(steps: list[dict[str, Any]]) -> dict[str, list[float]]:
    """Every number TRL logged at each step (loss, reward, kl, lengths, ...), as one list a key."""
    keys = set.intersection(*(set(entry) for entry in steps)) - {"step", "epoch"}
    return {
        k: [float(e[k]) for e in steps]
        for k in sorted(keys)
        if all(isinstance(e[k], int | float) and not isinstance(e[k], bool) for e in steps)
    }


@contextmanager
def generation_clock(model: torch.nn.Module) -> Iterator[list[float]]:
    """Seconds spent in ``model.generate`` (TRL's rollouts) while the block runs, as ``[total]``.

    TRL times generation only for wandb-like loggers, not in its log history; wrapping the
    model's own ``generate`` gives the same split whichever trainer class runs the round.
    """
    spent = [0.0]

    def wrap(original: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                spent[0] += time.perf_counter() - started

        return timed

    with generate_wrapped(model, wrap):
        yield spent


def train_locally(
    model: PeftModel,
    tokenizer: PreTrainedTokenizerBase,
    dataset: Dataset,
    reward_funcs: list[Any],
    cfg: Config,
    seed: int,
    steps: int,
    trainer_cls: type[GRPOTrainer] = GRPOTrainer,
    learning_rate: float | None = None,
    **trainer_kwargs: Any,
) -> RoundStats:
    """Run ``steps`` GRPO steps on ``dataset``, updating ``model``'s adapter in place."""
    needed = prompts_per_step(cfg.grpo_settings())
    if len(dataset) < needed:  # TRL would silently take no step
        raise ValueError(
            f"{len(dataset)} training prompts, fewer than one GRPO step needs ({needed} = "
            "grpo.per_device_train_batch_size / grpo.num_generations); raise data.train_size or lower the batch"
        )
    model.train()
    score_completions_only()
    started = time.perf_counter()
    # The model outlives the trainer (process-wide cache): undo the trainer's patches to it.
    with (
        tempfile.TemporaryDirectory(prefix="fgrpo-client-") as scratch,
        restored_after(model),
        group_prefill(model),
        generation_clock(model) as generating,
    ):
        trainer = trainer_cls(
            model=model,
            reward_funcs=reward_funcs,
            args=grpo_args(cfg, scratch, seed, steps, learning_rate),
            train_dataset=dataset,
            processing_class=tokenizer,
            **trainer_kwargs,
        )
        trainer.remove_callback(PrinterCallback)  # per-step dicts; the server prints a round line
        trainer.train()
    model.eval()
    stats = stats_from_log(trainer.state.log_history, time.perf_counter() - started)
    stats.generate_seconds = generating[0]
    return stats


class RoundScheduledGRPOTrainer(GRPOTrainer):
    """GRPOTrainer whose learning rate is constant within each block of ``steps_per_round`` steps
    and follows the server's schedule across blocks: the ``centralized`` reference's schedule."""

    def __init__(
        self, *args: Any, lr_by_round: Callable[[int], float], steps_per_round: int, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.lr_by_round, self.steps_per_round = lr_by_round, steps_per_round

    def create_scheduler(
        self, num_training_steps: int, optimizer: torch.optim.Optimizer | None = None
    ):  # noqa: ANN201
        if self.lr_scheduler is None:
            base = self.args.learning_rate
            self.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(
                optimizer or self.optimizer,
                lambda step: self.lr_by_round(step // self.steps_per_round + 1) / base,
            )
        return self.lr_scheduler
