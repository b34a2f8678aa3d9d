"""Local RL algorithms as presets over TRL's ``GRPOConfig`` (config key ``rl.algorithm``).

TRL's GRPOTrainer already implements every loss the paper compares; a preset
only chooses its settings. Resolution order for the GRPOConfig keyword
arguments is: fgrpo's laptop defaults (``GRPO_DEFAULTS``), then the preset,
then the user's ``grpo.*`` keys, so any ``grpo.<field>`` still overrides a
preset. Every preset names the same keys, so switching presets never leaves
another preset's value behind. Each run directory records the result in
``grpo_settings.json``.

This module is import-light on purpose (no TRL, no torch): the config module
uses it for validation.
"""

from __future__ import annotations

from typing import Any

# GRPO defaults sized for a CPU laptop; every key is a TRL GRPOConfig field and
# any of them can be overridden with grpo.<name>.
GRPO_DEFAULTS: dict[str, Any] = {
    # Chosen by benchmarks/recipe_sweep.py (results/recipe_sweep.md) on the shipped tiny reasoner.
    "learning_rate": 1e-3,
    "per_device_train_batch_size": 32,
    "num_generations": 4,
    "max_completion_length": 32,
    "temperature": 1.0,
    "beta": 0.0,
    # Constant within a round: a per-round decay would restart every round (fgrpo.core.schedule).
    "lr_scheduler_type": "constant",
    # Recomputing activations only costs time on a CPU with a small model.
    "activation_checkpointing": False,
}

# The TRL GRPOConfig fields every preset sets (and nothing else).
PRESET_KEYS = (
    "loss_type",
    "scale_rewards",
    "importance_sampling_level",
    "epsilon",
    "epsilon_high",
    "mask_truncated_completions",
)

RL_PRESETS: dict[str, dict[str, Any]] = {
    # DeepSeekMath GRPO: per-sequence length normalisation, group-std advantage scaling, symmetric
    # clip.
    "grpo": {
        "loss_type": "grpo",
        "scale_rewards": "group",
        "importance_sampling_level": "token",
        "epsilon": 0.2,
        "epsilon_high": None,
        "mask_truncated_completions": False,
    },
    # DAPO: clip-higher (eps_high 0.28), token-level normalisation over the accumulated batch,
    # overlong filtering (truncated completions masked out of the loss).
    "dapo": {
        "loss_type": "dapo",
        "scale_rewards": "group",
        "importance_sampling_level": "token",
        "epsilon": 0.2,
        "epsilon_high": 0.28,
        "mask_truncated_completions": True,
    },
    # Dr. GRPO: constant normaliser (max_completion_length), no std scaling of advantages.
    "dr_grpo": {
        "loss_type": "dr_grpo",
        "scale_rewards": "none",
        "importance_sampling_level": "token",
        "epsilon": 0.2,
        "epsilon_high": None,
        "mask_truncated_completions": False,
    },
    # BNPO: normalise by the active tokens of the local batch.
    "bnpo": {
        "loss_type": "bnpo",
        "scale_rewards": "group",
        "importance_sampling_level": "token",
        "epsilon": 0.2,
        "epsilon_high": None,
        "mask_truncated_completions": False,
    },
    # GSPO: sequence-level importance ratio with the paper's tight clip range; TRL advises
    # loss_type="grpo" with sequence-level sampling to reproduce the paper.
    "gspo": {
        "loss_type": "grpo",
        "scale_rewards": "group",
        "importance_sampling_level": "sequence",
        "epsilon": 3e-4,
        "epsilon_high": 4e-4,
        "mask_truncated_completions": False,
    },
    # CISPO (MiniMax-M1): clip the importance weights (eps_max 5.0, ScaleRL's value), not the
    # advantage-scaled ratio; token-level normalisation.
    "cispo": {
        "loss_type": "cispo",
        "scale_rewards": "group",
        "importance_sampling_level": "token",
        "epsilon": 0.2,
        "epsilon_high": 5.0,
        "mask_truncated_completions": False,
    },
}

RL_DESCRIPTIONS: dict[str, str] = {
    "grpo": "GRPO (DeepSeekMath): sequence-length-normalised loss, group-std advantages, clip 0.2",
    "dapo": "DAPO: clip-higher (0.2/0.28), token-level normalisation, truncated completions masked",
    "dr_grpo": "Dr. GRPO: constant loss normaliser, advantages not divided by the group std",
    "bnpo": "BNPO: loss normalised by the active tokens of the local batch",
    "gspo": "GSPO: sequence-level importance ratio, clip 3e-4/4e-4",
    "cispo": "CISPO: clipped importance weights (eps_max 5.0), token-level normalisation",
}


def preset(name: str) -> dict[str, Any]:
    """The TRL GRPOConfig settings of one preset (a copy)."""
    try:
        return dict(RL_PRESETS[name])
    except KeyError:
        raise ValueError(
            f"rl.algorithm: unknown preset {name!r}; known: {', '.join(RL_PRESETS)}"
        ) from None
