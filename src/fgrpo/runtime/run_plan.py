"""One line saying what a run will do: `fgrpo run --dry-run` and `fgrpo sweep --dry-run` print
it."""

from __future__ import annotations

from fgrpo.core.config import Config


def plan_line(cfg: Config) -> str:
    f, settings = cfg.federation, cfg.grpo_settings()
    steps = f.rounds * f.local_steps * max(int(f.num_clients * f.fraction_train), f.min_clients)
    return (
        f"{cfg.strategy.name} ({cfg.rl.algorithm}), model {cfg.model.name}, {f.num_clients} clients, "
        f"{f.rounds} rounds x {f.local_steps} local steps ({steps} client-steps of "
        f"{settings['per_device_train_batch_size']} completions), seed {cfg.seed}"
    )
