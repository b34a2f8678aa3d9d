"""One typed configuration for a run: TOML file + ``--set key=value`` overrides.

The config is validated completely before anything starts, so a typo costs a
second instead of a half-finished run. It flattens to dotted keys
(``federation.rounds``) because that is what Flower's ``run_config`` carries,
and the server forwards the resolved config to clients as JSON so both sides
train with exactly the same recipe.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from fgrpo.core import config_tree
from fgrpo.core.config_tracking import TrackingConfig
from fgrpo.core.config_values import section, setting
from fgrpo.core.rl import GRPO_DEFAULTS, RL_PRESETS
from fgrpo.core.schedule import SCHEDULES, round_learning_rate

DEVICE = {"pattern": r"auto|cpu|mps|cuda(:\d+)?", "forms": "auto, cpu, cuda, cuda:N or mps"}
# A table of multipliers, where an entry of 1 is the same as none: pyproject.toml declares one per
# key it can (so `flwr run --run-config` accepts them) and they must not change the config.
MULTIPLIERS = {"neutral": 1.0}
GAINS = ("range", "ratio", "zscore", "difference", "delta")
LORA_AGGREGATIONS = ("average", "exact", "ffa", "fedsa", "rolora")


@dataclass
class ModelConfig:
    """The base model and its LoRA adapter (the only weights that travel)."""

    name: str = setting(
        "tiny",
        "tiny, tiny-random, tiny-vl, smollm2-135m (fgrpo.models.registry), a Hugging Face hub id "
        "or a local model directory",
    )
    lora_r: int = setting(8, "LoRA rank r", min=1)
    lora_alpha: int = setting(16, "LoRA alpha (the update is scaled by alpha / r)", min=1)
    lora_dropout: float = setting(0.0, "dropout on the LoRA input", min=0.0, max=1.0)
    target_modules: list[str] = setting(
        ["all-linear"],
        "modules LoRA adapts: all-linear (all but the output head), names, or empty for PEFT's "
        "per-architecture pick (q/v for Llama: too few for the tiny reasoner's countdown)",
    )
    default_system_prompt: bool = setting(
        True,
        "let the chat template add its own system prompt to a prompt without one (SmolLM2's: 21 "
        "tokens); false leaves it out (fgrpo.models.chat_template)",
    )
    transport_dtype: str = setting(
        "fp32",
        "dtype of the adapter on the wire; bf16 halves the bytes (a reply then carries its update)",
        choices=("fp32", "bf16"),
    )
    dtype: str = setting(
        "float32",
        "base weights as loaded (LoRA adapters stay float32); bfloat16 halves a GPU model's memory",
        choices=("float32", "bfloat16", "float16"),
    )
    lora_aggregation: str = setting(
        "average",
        "how the server combines the clients' LoRA factors: average (A and B separately), exact "
        "(the global model is W0 + Σ w_k B_k A_k: the residual folds into the base weights), ffa "
        "(A frozen, only B trains), fedsa (only A is shared; each client keeps its own B and is "
        "evaluated as Ā + B_k), rolora (B trains in odd rounds, A in even ones)",
        choices=LORA_AGGREGATIONS,
    )


@dataclass
class FederationConfig:
    """Who takes part and how often."""

    num_clients: int = setting(4, "data owners (simulated nodes, or SuperNodes deployed)", min=1)
    rounds: int = setting(3, "federated rounds", min=1)
    local_steps: int = setting(2, "GRPO steps each sampled client takes per round (K)", min=1)
    fraction_train: float = setting(
        1.0, "fraction of the clients sampled each round", min=0.0, max=1.0
    )
    min_clients: int = setting(1, "usable replies a round needs to aggregate", min=1)
    round_timeout: float = setting(0.0, "seconds to wait for replies; 0: wait for all", min=0.0)
    max_norm_ratio: float = setting(
        10.0,
        "refuse an update whose norm exceeds this multiple of the round's median (from 3 replies "
        "on); 0: off",
        min=0.0,
    )
    client_cpus: float = setting(
        1.0, "CPU share of one simulated client; 1 on a 2-core laptop runs two at once", min=0.1
    )
    client_gpus: float = setting(0.0, "GPU share of one simulated client", min=0.0)
    lr_schedule: str = setting(
        "constant",
        "local learning rate across rounds, constant within a round (fgrpo.core.schedule)",
        choices=SCHEDULES,
    )
    optimizer_state: str = setting(
        "reset",
        "each client's AdamW across rounds: reset (a fresh one every round, TRL's default) or keep "
        "(its moments and step count persist in the client's own state; they never leave it)",
        choices=("reset", "keep"),
    )
    client_lr_scale: dict[str, float] = setting(
        {},
        'learning-rate multiplier per partition id, e.g. {"0" = 0.0} stalls client 0 (a testing '
        "and benchmark knob); unlisted clients train at the full rate",
        **MULTIPLIERS,
    )


@dataclass
class StrategyConfig:
    """The aggregation rule and every constant of it (FGRPO's symbols are those of docs/design.md)."""

    name: str = setting("fgrpo", "the aggregation strategy (`fgrpo strategies` lists them)")
    # probe/zscore at tau 3: the mode benchmarks/fgrpo_signal.py favours (results/fgrpo_signal.md)
    signal: str = setting(
        "probe",
        "FGRPO's p_{k,τ}: train-reward (rollouts' reward per task) or probe (reward on a fixed "
        "held-out probe of the client's own distribution, after training)",
        choices=("train-reward", "probe"),
    )
    gain: str = setting(
        "zscore",
        "FGRPO's gain: range (p-b)/(r_max-r_min), ratio (p-b)/max(|b|, eps·range), zscore "
        "(p-b)/max(s, spread_floor·range), difference p-b, delta (p_after-p_before)/range",
        choices=GAINS,
    )
    beta: float = setting(0.8, "FGRPO: β of the baseline EMA b ← βb + (1-β)p", min=0.0, max=1.0)
    tau: float = setting(3.0, "FGRPO: temperature τ of w_k ∝ n_k^γ exp(g_k / τ)", min=1e-9)
    gamma: float = setting(1.0, "FGRPO: exponent γ on the client's data size n_k", min=0.0)
    g_max: float = setting(5.0, "FGRPO: gains are clipped to [-g_max, g_max]", min=0.0)
    floor: float = setting(
        0.0, "FGRPO: each weight is at least floor / |S_t| of the round", min=0.0, max=1.0
    )
    eps: float = setting(
        0.1,
        "FGRPO ratio gain: floor of |b| as a fraction of the task's reward range (bounded where b "
        "nears 0)",
        min=1e-12,
    )
    server_lr: float = setting(
        1.0,
        "η of θ ← θ + η (aggregate - θ) under every strategy that aggregates adapters; those with "
        "a server optimizer or no aggregate refuse η ≠ 1",
        min=0.0,
    )
    probe_samples: int = setting(
        0,
        "probe answers per row: 0 greedy; k > 0 samples k at probe_temperature with common random "
        "numbers before and after training",
        min=0,
    )
    probe_temperature: float = setting(1.0, "temperature of sampled probe answers", min=1e-6)
    spread_floor: float = setting(
        0.05, "zscore's s_min, as a fraction of the task's reward range", min=0.0
    )
    warmup_reports: int = setting(
        3,
        "zscore: gain 0 until a (client, task) has this many reports, the current one included "
        "(3: the first with a spread estimate)",
        min=1,
    )
    signal_skip_steps: int = setting(
        1,
        "train-reward: leave out the first local steps' rollouts (they sample the received global "
        "model); the last step always counts",
        min=0,
    )
    baseline_at: str = setting(
        "server",
        "where b_{k,τ} lives: server, or client (only g_k leaves the data owner)",
        choices=("server", "client"),
    )
    proximal_mu: float = setting(0.01, "fedprox: μ of the client's μ/2 ‖θ - θ_global‖²", min=0.0)
    # eta is sized for LoRA deltas (Flower's 0.1 suits full models trained by SGD).
    opt_eta: float = setting(
        1e-3, "server optimizer step (fedadam, fedyogi, fedadagrad, fgrpo-adam)", min=0.0
    )
    opt_beta_1: float = setting(0.9, "server optimizer β1", min=0.0, max=1.0)
    opt_beta_2: float = setting(0.99, "server optimizer β2", min=0.0, max=1.0)
    opt_tau: float = setting(1e-6, "server optimizer τ (adaptivity)", min=1e-12)
    server_momentum: float = setting(
        0.9, "fedavgm: server momentum (its step: server_lr)", min=0.0, max=1.0
    )
    trim_beta: float = setting(0.2, "fedtrimmedavg: fraction cut per tail", min=0.0, max=0.499)
    krum_num_malicious: int = setting(0, "krum: f, the assumed number of attackers", min=0)


@dataclass
class SourceConfig:
    """One ``[[data.sources]]`` table: a dataset a data owner brings, used as one task.

    See fgrpo.tasks.sources for how a source is loaded, validated and rewarded.
    """

    name: str = setting("", "the task label: partitions, reward routing and evaluation use it")
    path: str = setting(
        "", "local file (.jsonl/.json/.csv/.parquet) or a directory holding <split>.<ext>"
    )
    hub: str = setting("", 'Hugging Face hub id, e.g. "openai/gsm8k" (exactly one of path / hub)')
    subset: str = setting("", 'hub config name, e.g. "main" for gsm8k')
    split: str = setting("train", "the split the training rows come from")
    test_path: str = setting(
        "", "held-out file; else test_split; else test rows carved from the data"
    )
    test_split: str = setting("", "the split of held-out rows")
    prompt_column: str = setting("prompt", "the column holding the prompt")
    answer_column: str = setting("answer", "the column holding the gold answer")
    image_column: str = setting(
        "", "a column of images or image paths (relative to the file): the row's image"
    )
    rename: dict[str, str] = setting({}, '{old column = "new column"}, applied first')
    columns: dict[str, str] = setting(
        {},
        '{new column = "column"}: a copy under the name a reward function expects, e.g. '
        '{solution = "gold"}',
    )
    system_prompt: str = setting("", "a system message before every prompt")
    answer_format: str = setting(
        "auto",
        "how the gold answer is written",
        choices=("auto", "gsm8k", "boxed", "tag", "plain"),
    )
    checker: str = setting(
        "math", "how an answer is compared with the gold one", choices=("math", "exact")
    )
    rewards: list[str] = setting([], '"package.module:function" reward functions; empty: accuracy')
    train_size: int = setting(0, "training rows to use; 0: every row", min=0)
    test_size: int = setting(-1, "held-out rows to evaluate; -1: data.test_size", min=-1)
    on_bad_rows: str = setting(
        "error", "a malformed row stops the run, or is skipped", choices=("error", "skip")
    )
    reward_min: float = setting(0.0, "declared minimum of the source's total reward")
    reward_max: float = setting(1.0, "declared maximum of the source's total reward")


@dataclass
class DataConfig:
    """The tasks, how they are split among the clients, and each client's probe."""

    tasks: list[str] = setting(
        ["addition", "multiplication", "sorting", "countdown"],
        "procedural task labels (`fgrpo tasks` lists them; modular, which nothing tried taught)",
    )
    partition: str = setting(
        "dirichlet",
        "how the pool is split: iid, dirichlet (over task labels, alpha), pathological "
        "(tasks_per_client labels each) or size-skew",
        choices=("iid", "dirichlet", "pathological", "size-skew"),
    )
    alpha: float = setting(0.5, "Dirichlet concentration: small is heterogeneous", min=1e-6)
    tasks_per_client: int = setting(2, "pathological: labels per client", min=1)
    train_size: int = setting(
        400, "prompts in the training pool, split evenly over data.tasks", min=1
    )
    test_size: int = setting(
        200,
        "held-out prompts per task (>= 200 keeps the macro standard error near 0.015)",
        min=1,
    )
    difficulty: int = setting(1, "procedural tasks' difficulty level", min=1)
    reward_scale: dict[str, float] = setting(
        {}, "a multiplier of a task's native reward, e.g. {multiplication = 100.0}", **MULTIPLIERS
    )
    format_reward: float = setting(
        0.0, "weight of the answer-format reward beside accuracy; 0: none", min=0.0
    )
    probe_size: int = setting(
        64,
        "rows of each client's probe, laid out the same for every strategy (fgrpo.data.probe_rows);"
        " 0: no probe",
        min=0,
    )
    sources: list[SourceConfig] = setting(
        [], "bring-your-own datasets, each one more task label ([[data.sources]] tables)"
    )


@dataclass
class EvalConfig:
    """The server's held-out evaluation of the global adapter."""

    every: int = setting(
        1, "evaluate every this many rounds (and after the last); 0: at the end", min=0
    )
    max_new_tokens: int = setting(
        32, "new tokens of a greedy answer (32 fits every default task's tagged answer)", min=1
    )
    batch_size: int = setting(256, "prompts per generation batch", min=1)
    threads: int = setting(
        1,
        "torch threads of the server's evaluation (a small model's ops are too small to split)",
        min=1,
    )
    concurrent_tasks: int = setting(
        2, "tasks evaluated at once, each in its own thread (the clients idle meanwhile)", min=1
    )
    device: str = setting(
        "auto", "where the server evaluates: auto is the accelerator if any, else cpu", **DEVICE
    )


@dataclass
class PrivacyConfig:
    """Flower's differential-privacy wrappers (fgrpo.server.strategies.privacy)."""

    dp: str = setting(
        "none",
        "clip each update to clipping_norm on the server or on the client, then add "
        "N(0, (noise_multiplier·clipping_norm/n)²)",
        choices=("none", "server-fixed", "client-fixed"),
    )
    noise_multiplier: float = setting(1.0, "σ of the noise, as a multiple of the clip", min=0.0)
    clipping_norm: float = setting(1.0, "the clip of each update's norm", min=1e-12)


@dataclass
class OutputConfig:
    """Where a run writes."""

    dir: str = setting(
        "runs/latest", "run directory of `flwr run .`; `fgrpo run --out` overrides it"
    )


@dataclass
class RLConfig:
    """The local RL algorithm."""

    algorithm: str = setting(
        "grpo",
        "a preset over TRL's GRPOConfig (fgrpo.core.rl; `fgrpo strategies` lists them); grpo.* "
        "keys still override",
        choices=tuple(RL_PRESETS),
    )


@dataclass
class Config:
    seed: int = setting(0, "seed of data, partitions, sampling and training")
    model: ModelConfig = section(ModelConfig, ModelConfig.__doc__ or "")
    federation: FederationConfig = section(FederationConfig, FederationConfig.__doc__ or "")
    strategy: StrategyConfig = section(StrategyConfig, StrategyConfig.__doc__ or "")
    data: DataConfig = section(DataConfig, DataConfig.__doc__ or "")
    eval: EvalConfig = section(EvalConfig, EvalConfig.__doc__ or "")
    output: OutputConfig = section(OutputConfig, OutputConfig.__doc__ or "")
    privacy: PrivacyConfig = section(PrivacyConfig, PrivacyConfig.__doc__ or "")
    rl: RLConfig = section(RLConfig, RLConfig.__doc__ or "")
    tracking: TrackingConfig = section(TrackingConfig, TrackingConfig.__doc__ or "")
    grpo: dict[str, Any] = setting(
        {},
        "any field of TRL's GRPOConfig, over fgrpo's defaults and the rl.algorithm preset",
    )

    # --- conversions -------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def flatten(self) -> dict[str, Any]:
        """Dotted keys, as Flower's run_config holds them."""
        return config_tree.flatten(self.to_dict())

    def grpo_settings(self) -> dict[str, Any]:
        """Keyword arguments for TRL's GRPOConfig: defaults, then the rl.algorithm preset, then the
        user's keys."""
        return {**GRPO_DEFAULTS, **RL_PRESETS[self.rl.algorithm], **self.grpo}

    def round_learning_rate(self, server_round: int) -> float:
        """The local learning rate of one round under ``federation.lr_schedule``."""
        lr = float(self.grpo_settings()["learning_rate"])
        return round_learning_rate(
            lr, self.federation.lr_schedule, server_round, self.federation.rounds
        )
