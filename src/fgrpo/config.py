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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import config_tree
from .config_paths import resolve_tree
from .config_values import at_least, build, choice, parse_override, within
from .errors import ConfigError
from .rl import GRPO_DEFAULTS, RL_PRESETS
from .schedule import SCHEDULES, round_learning_rate


def _device() -> dict[str, Any]:
    """A torch device setting; whether this machine has it is fgrpo.devices' (and preflight's) to
    say."""
    return {"pattern": r"auto|cpu|mps|cuda(:\d+)?", "forms": "auto, cpu, cuda, cuda:N or mps"}


def _multipliers() -> dict[str, Any]:
    """A table of multipliers, where an entry of 1 is the same as none: pyproject.toml declares one
    per key it can (so `flwr run --run-config` accepts them) and they must not change the config."""
    return {"neutral": 1.0}


@dataclass
class ModelConfig:
    name: str = "tiny"
    lora_r: int = field(default=8, metadata=at_least(1))
    lora_alpha: int = field(default=16, metadata=at_least(1))
    lora_dropout: float = field(default=0.0, metadata=within(0.0, 1.0))
    # Empty list: chosen per architecture (see fgrpo.models.lora).
    target_modules: list[str] = field(default_factory=list)
    transport_dtype: str = field(default="fp32", metadata=choice("fp32", "bf16"))
    # Base weights as loaded, for every model (LoRA adapters stay float32); bfloat16 halves a GPU
    # model's memory.
    dtype: str = field(default="float32", metadata=choice("float32", "bfloat16", "float16"))


@dataclass
class FederationConfig:
    num_clients: int = field(default=4, metadata=at_least(1))
    rounds: int = field(default=3, metadata=at_least(1))
    local_steps: int = field(default=2, metadata=at_least(1))
    fraction_train: float = field(default=1.0, metadata=within(0.0, 1.0))
    min_clients: int = field(
        default=1, metadata=at_least(1)
    )  # usable replies a round needs to aggregate
    round_timeout: float = field(
        default=0.0, metadata=at_least(0.0)
    )  # seconds to wait for replies; 0: all
    # Refuse an update whose norm exceeds this multiple of the round's median (from 3 replies on);
    # 0: off.
    max_norm_ratio: float = field(default=10.0, metadata=at_least(0.0))
    # CPU share of one simulated client; 1 on a 2-core laptop runs two at once.
    client_cpus: float = field(default=1.0, metadata=at_least(0.1))
    client_gpus: float = field(default=0.0, metadata=at_least(0.0))
    # Learning rate across rounds (constant within a round): see fgrpo.schedule.
    lr_schedule: str = field(default="constant", metadata=choice(*SCHEDULES))
    # Testing/benchmark knob: learning-rate multiplier per partition id, e.g. {"0" = 0.0} stalls
    # client 0 (benchmarks/fgrpo_signal.py). Unlisted clients train at the full rate.
    client_lr_scale: dict[str, float] = field(default_factory=dict, metadata=_multipliers())


@dataclass
class StrategyConfig:
    name: str = "fgrpo"
    # FGRPO (see README "FGRPO aggregation"): every symbol of the rule.
    # probe/zscore at tau 3: the mode benchmarks/fgrpo_signal.py favours (results/fgrpo_signal.md,
    # 2026-12-02, like-with-like data); within noise of the others on the laptop testbed
    signal: str = field(default="probe", metadata=choice("train-reward", "probe"))
    gain: str = field(
        default="zscore", metadata=choice("range", "ratio", "zscore", "difference", "delta")
    )
    beta: float = field(default=0.8, metadata=within(0.0, 1.0))
    tau: float = field(default=3.0, metadata=at_least(1e-9))
    gamma: float = field(default=1.0, metadata=at_least(0.0))
    g_max: float = field(default=5.0, metadata=at_least(0.0))
    floor: float = field(default=0.0, metadata=within(0.0, 1.0))
    # ratio's floor of |b| as a fraction of the task's reward range (scale-invariant, and bounded
    # where b nears 0: one probe row can no longer hand a client all the weight)
    eps: float = field(default=0.1, metadata=at_least(1e-12))
    # η of θ <- θ + η (aggregate - θ) under every strategy that aggregates adapters (fedavgm:
    # Flower's server_learning_rate); those with a server optimizer (opt_eta) or no aggregate refuse
    # η != 1.
    server_lr: float = field(default=1.0, metadata=at_least(0.0))
    # probe answers per row: 0 greedy; k > 0 samples k at probe_temperature with the same random
    # numbers before and after training (common random numbers), a finer signal than 0/1 per row
    probe_samples: int = field(default=0, metadata=at_least(0))
    probe_temperature: float = field(default=1.0, metadata=at_least(1e-6))
    spread_floor: float = field(
        default=0.05, metadata=at_least(0.0)
    )  # zscore's s_min, x the task's range
    # zscore: gain 0 until a (client, task) has this many reports, the current one included; 3 is
    # the first report with a spread estimate (the first has no baseline, the second no past
    # deviation)
    warmup_reports: int = field(default=3, metadata=at_least(1))
    # train-reward: leave out the rollouts of the first local steps, which sample the received
    # global model (the same for every client); the last step always counts.
    signal_skip_steps: int = field(default=1, metadata=at_least(0))
    baseline_at: str = field(default="server", metadata=choice("server", "client"))
    # Baselines (fgrpo.server.strategies): each constant of Flower's strategies is a key.
    proximal_mu: float = field(
        default=0.01, metadata=at_least(0.0)
    )  # fedprox: mu/2 ||theta - theta_global||^2
    # Server optimizer of fedadam / fedyogi / fedadagrad / fgrpo-adam (Reddi et al. 2021, Flower's
    # FedOpt). eta is sized for LoRA deltas (Flower's 0.1 suits full models trained by SGD).
    opt_eta: float = field(default=1e-3, metadata=at_least(0.0))
    opt_beta_1: float = field(default=0.9, metadata=within(0.0, 1.0))
    opt_beta_2: float = field(default=0.99, metadata=within(0.0, 1.0))
    opt_tau: float = field(default=1e-6, metadata=at_least(1e-12))
    server_momentum: float = field(
        default=0.9, metadata=within(0.0, 1.0)
    )  # fedavgm (lr: server_lr)
    trim_beta: float = field(
        default=0.2, metadata=within(0.0, 0.499)
    )  # fedtrimmedavg: cut per tail
    krum_num_malicious: int = field(
        default=0, metadata=at_least(0)
    )  # krum: f, the assumed attackers


@dataclass
class SourceConfig:
    """One ``[[data.sources]]`` table: a dataset a data owner brings, used as one task.

    See fgrpo.tasks.sources for how a source is loaded, validated and rewarded.
    """

    name: str = ""  # the task label: partitions, reward routing and evaluation use it
    path: str = ""  # local file (.jsonl/.json/.csv/.parquet) or a directory holding <split>.<ext>
    hub: str = ""  # Hugging Face hub id, e.g. "openai/gsm8k" (exactly one of path / hub)
    subset: str = ""  # hub config name, e.g. "main" for gsm8k
    split: str = "train"
    test_path: str = ""  # held-out file; else test_split; else test rows carved from the data
    test_split: str = ""
    prompt_column: str = "prompt"
    answer_column: str = "answer"
    image_column: str = (
        ""  # a column of images or image paths (relative to the file): the row's ``image``
    )
    rename: dict[str, str] = field(
        default_factory=dict
    )  # {old column = "new column"}, applied first
    # {new column = "column"}: a copy under the name a reward function expects, e.g. {solution =
    # "gold"}
    columns: dict[str, str] = field(default_factory=dict)
    system_prompt: str = ""
    answer_format: str = field(
        default="auto", metadata=choice("auto", "gsm8k", "boxed", "tag", "plain")
    )
    checker: str = field(default="math", metadata=choice("math", "exact"))
    rewards: list[str] = field(default_factory=list)  # "package.module:function"; empty: accuracy
    train_size: int = field(default=0, metadata=at_least(0))  # 0: every row
    test_size: int = field(default=-1, metadata=at_least(-1))  # -1: data.test_size
    on_bad_rows: str = field(default="error", metadata=choice("error", "skip"))
    # Declared range of the source's total reward (FGRPO's range gain); [0, 1] fits the accuracy
    # reward.
    reward_min: float = 0.0
    reward_max: float = 1.0


@dataclass
class DataConfig:
    tasks: list[str] = field(
        default_factory=lambda: ["addition", "multiplication", "sorting", "countdown", "modular"]
    )
    partition: str = field(
        default="dirichlet", metadata=choice("iid", "dirichlet", "pathological", "size-skew")
    )
    alpha: float = field(default=0.5, metadata=at_least(1e-6))
    tasks_per_client: int = field(default=2, metadata=at_least(1))
    train_size: int = field(default=400, metadata=at_least(1))
    # >= 200 distinct held-out prompts per task keeps the macro standard error near 0.015.
    test_size: int = field(default=200, metadata=at_least(1))
    difficulty: int = field(default=1, metadata=at_least(1))
    # Multiplies a task's native reward, e.g. {multiplication = 100.0}.
    reward_scale: dict[str, float] = field(default_factory=dict, metadata=_multipliers())
    format_reward: float = field(default=0.0, metadata=at_least(0.0))
    # Rows of each client's probe (FGRPO's probe signal), laid out the same for every strategy
    # (fgrpo.probe_rows): procedural tasks' probes are generated beside the training pool; a data
    # source's probe rows (a tenth of each task's rows, one from a small task) are held out of
    # training whatever the strategy, so every strategy trains on the same rows. 0: no probe (the
    # probe signal is refused).
    probe_size: int = field(default=64, metadata=at_least(0))
    # Bring-your-own datasets, each one more task label ([[data.sources]] tables).
    sources: list[SourceConfig] = field(default_factory=list)


@dataclass
class EvalConfig:
    every: int = field(default=1, metadata=at_least(0))
    # 32 fits every default task's tagged answer in the tiny model's characters.
    max_new_tokens: int = field(default=32, metadata=at_least(1))
    batch_size: int = field(default=256, metadata=at_least(1))
    # torch threads of the server's evaluation: a small model's ops are too small to split, and
    # extra threads spin against the clients' and other jobs' processes
    # (benchmarks/results/perf.md).
    threads: int = field(default=1, metadata=at_least(1))
    # tasks whose answers are generated at once, each in its own thread of `threads` torch threads:
    # the clients' workers sit idle while the server evaluates (benchmarks/results/perf.md).
    concurrent_tasks: int = field(default=2, metadata=at_least(1))
    # where the server evaluates: auto = the accelerator when there is one (cuda, else mps), else
    # cpu
    device: str = field(default="auto", metadata=_device())


@dataclass
class PrivacyConfig:
    # Flower's DP wrappers (fgrpo.server.strategies.privacy): clip each update θ_k − θ to
    # clipping_norm on the server or on the client, then add N(0,
    # (noise_multiplier·clipping_norm/n)²).
    dp: str = field(default="none", metadata=choice("none", "server-fixed", "client-fixed"))
    noise_multiplier: float = field(default=1.0, metadata=at_least(0.0))
    clipping_norm: float = field(default=1.0, metadata=at_least(1e-12))


@dataclass
class OutputConfig:
    # Where `flwr run .` writes; `fgrpo run --out` overrides it.
    dir: str = "runs/latest"


@dataclass
class RLConfig:
    # Local RL algorithm: a preset over TRL's GRPOConfig (fgrpo.rl); grpo.* keys still override.
    algorithm: str = field(default="grpo", metadata=choice(*RL_PRESETS))


@dataclass
class Config:
    seed: int = 0
    model: ModelConfig = field(default_factory=ModelConfig)
    federation: FederationConfig = field(default_factory=FederationConfig)
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    data: DataConfig = field(default_factory=DataConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)
    rl: RLConfig = field(default_factory=RLConfig)
    grpo: dict[str, Any] = field(default_factory=dict)

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


def validate_grpo_keys(grpo: dict[str, Any]) -> None:
    """Every grpo.* key must be a TRL GRPOConfig field (checked against TRL itself)."""
    if not grpo:
        return
    from trl import GRPOConfig  # imported lazily: TRL takes seconds to import

    fields = {f.name for f in dataclasses.fields(GRPOConfig)}
    for key in grpo:
        if key not in fields:
            raise ConfigError(f"grpo.{key}", "not a field of TRL's GRPOConfig")


def validate_strategy_name(name: str) -> None:
    """strategy.name must be in the registry (imported lazily: it pulls in Flower)."""
    from .server.strategies import STRATEGIES

    if name not in STRATEGIES:
        raise ConfigError(
            "strategy.name", f"unknown strategy {name!r}; known: {', '.join(STRATEGIES)}"
        )


# Keys that moved to another table since an earlier release (old run directories hold them).
MOVED_KEYS = {"strategy.probe_size": "data.probe_size"}


def config_from_dict(tree: dict[str, Any], *, local_files: bool = True) -> Config:
    """``local_files=False``: data paths are another machine's (a deployed client's view)."""
    cfg = build(Config, tree, moved=MOVED_KEYS)
    validate_grpo_keys(cfg.grpo)
    validate_strategy_name(cfg.strategy.name)
    if cfg.federation.min_clients > cfg.federation.num_clients:
        raise ConfigError("federation.min_clients", "cannot exceed federation.num_clients")
    if 0 < cfg.federation.max_norm_ratio < 1:
        raise ConfigError(
            "federation.max_norm_ratio",
            "must be 0 (off) or >= 1: below 1 it refuses the median update itself",
        )
    if cfg.eval.max_new_tokens < 1:
        raise ConfigError("eval.max_new_tokens", "must be positive")
    if cfg.strategy.gain == "delta" and cfg.strategy.signal != "probe":
        raise ConfigError(
            "strategy.gain",
            "delta compares the probe before and after training: set strategy.signal=probe",
        )
    for key, scale in cfg.federation.client_lr_scale.items():
        if not key.isdigit() or int(key) >= cfg.federation.num_clients:
            raise ConfigError(
                f"federation.client_lr_scale.{key}", "keys are partition ids 0..num_clients-1"
            )
        if scale < 0:
            raise ConfigError(f"federation.client_lr_scale.{key}", f"must be >= 0, got {scale}")
    from .tasks.rewards import check_reward_weights
    from .tasks.sources import validate_data_config  # lazily: tasks import datasets helpers

    validate_data_config(cfg.data, local_files)
    check_reward_weights(cfg)
    from .server.strategies import check_server_lr  # lazily, like validate_strategy_name
    from .server.strategies.privacy import check_privacy

    check_server_lr(cfg)
    check_privacy(cfg)
    return cfg


def config_from_flat(flat: dict[str, Any]) -> Config:
    """Rebuild a Config from Flower's flattened run_config (a grpo.* list, such as
    reward_weights, travels as JSON: TRL's keys have no declared type to parse it by)."""
    values = {
        k: json.loads(v)
        if k.startswith("grpo.") and isinstance(v, str) and v.startswith("[")
        else v
        for k, v in flat.items()
    }
    return config_from_dict(config_tree.unflatten(values))


def load_config(
    path: str | Path | None = None,
    overrides: list[str] | None = None,
    *,
    overrides_dir: Path | None = None,
    local_files: bool = True,
) -> Config:
    """TOML file (optional) plus ``key=value`` overrides, fully validated.

    Paths resolve against the file's folder, the overrides' against ``overrides_dir`` (default:
    the current directory, where a ``--set`` is typed); fgrpo.config_paths says which keys."""
    tree: dict[str, Any] = {}
    if path is not None:
        tree = resolve_tree(config_tree.read_toml(Path(path)), Path(path).parent)
    flat_overrides = dict(parse_override(o) for o in overrides or [])
    extra = resolve_tree(config_tree.unflatten(flat_overrides), overrides_dir or Path.cwd())
    return config_from_dict(config_tree.merge(tree, extra), local_files=local_files)
