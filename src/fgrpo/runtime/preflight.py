"""Everything ``fgrpo run`` checks before it starts Ray and Flower.

Each mistake a user can make in a run's inputs fails here, in one line naming the
culprit, instead of inside every client after a minute of start-up: the output
directory, the model name, the ``grpo.*`` values, the data and partitions, each
client's share against one GRPO step, and the reward functions (probed with gold,
empty and malformed completions).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from fgrpo.client.grpo import prompts_per_step
from fgrpo.core.config import Config
from fgrpo.core.errors import ConfigError, HubUnreachable
from fgrpo.core.out_dir import check_writable_dir
from fgrpo.data.partitions import check_data, client_partition
from fgrpo.models.availability import check_model
from fgrpo.models.devices import resolve_device
from fgrpo.models.registry import reads_images
from fgrpo.runtime.grpo_check import check_grpo_settings
from fgrpo.runtime.tracking import check_backends
from fgrpo.server.strategies import strategy_entry
from fgrpo.tasks import TASKS


def check_train_size(cfg: Config) -> None:
    """Fewer pooled prompts than clients cannot be partitioned."""
    if cfg.data.tasks and not cfg.data.sources and cfg.data.train_size < cfg.federation.num_clients:
        raise ConfigError(
            "data.train_size",
            f"{cfg.data.train_size} prompts cannot be shared by "
            f"{cfg.federation.num_clients} clients (federation.num_clients)",
        )


def check_client_shares(cfg: Config) -> None:
    """Every client must hold at least the prompts one GRPO step samples."""

    if not strategy_entry(cfg.strategy.name).in_flower:  # one trainer on the pooled data: no shares
        return
    needed = prompts_per_step(cfg.grpo_settings())
    for pid in range(cfg.federation.num_clients):
        size = len(client_partition(cfg, pid))
        if size < needed:
            raise ConfigError(
                "data.train_size",
                f"client {pid} gets {size} prompts under {cfg.data.partition!r}, "
                f"fewer than one GRPO step samples ({needed} = grpo.per_device_train_batch_size / "
                "grpo.num_generations); add data, use fewer clients or a smaller batch",
            )


def check_images(cfg: Config) -> None:
    """Tasks whose prompts carry images need a model that reads them."""

    with_images = [n for n in cfg.data.tasks if TASKS[n].needs_images] + [
        s.name for s in cfg.data.sources if s.image_column
    ]
    if with_images and reads_images(cfg.model.name) is False:
        raise ConfigError(
            "model.name",
            f"{cfg.model.name!r} reads no images, and {with_images[0]!r} asks about images; "
            "use a vision-language model (tiny-vl, or a hub id such as Qwen/Qwen2.5-VL-3B-Instruct)",
        )


def cpu_bf16_note(cfg: Config) -> str | None:
    """A note when ``grpo.bf16`` asks a CPU without native bfloat16 to autocast: it works, but
    emulated bf16 is far slower than fp32 (measured: benchmarks/results/perf_real.md)."""
    if not cfg.grpo_settings().get("bf16") or torch.cuda.is_available():
        return None
    if torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return None
    return (
        "note: grpo.bf16 = true on a CPU without native bfloat16 (no AVX512-BF16 or AMX): autocast "
        "emulates it, several times slower than float32 (benchmarks/results/perf_real.md)"
    )


def check_run(cfg: Config, out_dir: Path, dry_run: bool = False) -> dict[str, str]:
    """Raise a UserInputError (one line, naming the culprit) for any input ``fgrpo run`` cannot use.

    With ``dry_run``, what needs an unreachable Hugging Face hub (a paper-scale config planned on a
    laptop) is not an error: the checks it blocks are skipped and returned as notes ({"model" or
    "data": why}).
    """

    notes: dict[str, str] = {}

    def unless_offline(what: str, check: Callable[..., None], *args: object) -> bool:
        try:
            check(*args)
        except HubUnreachable as err:
            if not dry_run:
                raise
            notes[what] = f"not checked here: {err}"
            return False
        return True

    check_writable_dir(out_dir)
    check_backends(cfg)
    unless_offline("model", check_model, cfg.model.name)
    check_images(cfg)
    resolve_device(cfg.eval.device)  # a GPU asked for on a machine without one
    check_grpo_settings(cfg)
    check_train_size(cfg)
    if unless_offline("data", check_data, cfg):
        check_client_shares(cfg)
    if note := cpu_bf16_note(cfg):
        notes["bf16"] = note
    return notes
