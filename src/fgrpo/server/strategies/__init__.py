"""Aggregation strategies by name: Flower's where Flower has one, ours where it does not.

Every strategy the registry builds keeps ``self.ledger``: one row per participating
client with the weight that client actually had in the round's aggregate.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from flwr.serverapp.strategy import Strategy

from fgrpo.core.config import Config
from fgrpo.core.errors import ConfigError
from fgrpo.core.fgrpo_rule import fgrpo_params
from fgrpo.server.strategies.baselines import (
    LedgeredFedAdagrad,
    LedgeredFedAdam,
    LedgeredFedAvg,
    LedgeredFedAvgM,
    LedgeredFedMedian,
    LedgeredFedProx,
    LedgeredFedTrimmedAvg,
    LedgeredFedYogi,
    LedgeredKrum,
    RewardWeighted,
    reward_floor,
)
from fgrpo.server.strategies.fgrpo import Fgrpo, FgrpoAdam, FgrpoSetup
from fgrpo.server.strategies.local_only import LocalOnly
from fgrpo.server.strategies.privacy import check_privacy, with_privacy
from fgrpo.server.strategies.scaffold import Scaffold
from fgrpo.tasks.rewards import reward_ranges


def _sampling(cfg: Config) -> dict[str, Any]:
    return {
        "fraction_train": cfg.federation.fraction_train,
        "fraction_evaluate": 0.0,  # evaluation is server-side on held-out prompts
        "min_train_nodes": cfg.federation.min_clients,
        "min_evaluate_nodes": 0,
        "min_available_nodes": cfg.federation.min_clients,
    }


def _fgrpo_setup(cfg: Config) -> FgrpoSetup:
    return FgrpoSetup(
        fgrpo_params(cfg), cfg.strategy.signal, cfg.strategy.baseline_at, reward_ranges(cfg)
    )


def _server_opt(cfg: Config, with_betas: bool = True) -> dict[str, Any]:
    """Flower FedOpt's constants; eta_l (informational in Flower) is the clients' learning rate."""
    s = cfg.strategy
    opt = {"eta": s.opt_eta, "eta_l": float(cfg.grpo_settings()["learning_rate"]), "tau": s.opt_tau}
    if with_betas:
        opt.update(beta_1=s.opt_beta_1, beta_2=s.opt_beta_2)
    return opt


def _stepped(cfg: Config) -> dict[str, Any]:
    """Sampling plus strategy.server_lr, for the strategies that step θ towards their aggregate."""
    return {**_sampling(cfg), "server_lr": cfg.strategy.server_lr}


class Entry(NamedTuple):
    """One strategy, described so that no caller compares names: what it is, how it is built and
    which of the run's features apply to it."""

    description: str
    # None: not a Flower strategy; it trains in one process (fgrpo.runtime.centralized)
    factory: Callable[[Config], Strategy] | None
    federated: bool = True  # False: a reference point the federated methods are measured against
    dp_wrappable: bool = True  # privacy.dp can wrap it: its replies carry exactly one adapter
    resumable: bool = True  # --resume continues it from its checkpoint
    # what a round's evaluation scores: "global" the aggregate θ, "clients" each client's own adapter
    evaluation: str = "global"
    # where strategy.server_lr cannot apply, why (fgrpo.server.strategies.server_lr)
    without_server_lr: str = ""
    # its aggregate is Σ w_k θ_k with the ledger's weights (what model.lora_aggregation = exact needs)
    weighted_mean: bool = True

    @property
    def in_flower(self) -> bool:
        return self.factory is not None


OWN_OPTIMIZER = "its server optimizer has its own learning rate, strategy.opt_eta"
NO_AGGREGATE = "it never aggregates the clients' adapters"

STRATEGIES: dict[str, Entry] = {
    "fedavg": Entry(
        "Flower's FedAvg: weights proportional to num-examples",
        lambda cfg: LedgeredFedAvg(**_stepped(cfg)),
    ),
    "fedprox": Entry(
        "Flower's FedProx: FedAvg + client loss mu/2*||theta - theta_global||^2 (strategy.proximal_mu)",
        lambda cfg: LedgeredFedProx(proximal_mu=cfg.strategy.proximal_mu, **_stepped(cfg)),
    ),
    "scaffold": Entry(
        "SCAFFOLD option II: client/server control variates correct every local step",
        lambda cfg: Scaffold(**_stepped(cfg)),
        dp_wrappable=False,  # its replies carry the control variates beside the adapter
    ),
    "fedadam": Entry(
        "Flower's FedAdam: server Adam step on the FedAvg average (strategy.opt_*)",
        lambda cfg: LedgeredFedAdam(**_server_opt(cfg), **_sampling(cfg)),
        without_server_lr=OWN_OPTIMIZER,
        weighted_mean=False,
    ),
    "fedyogi": Entry(
        "Flower's FedYogi: server Yogi step on the FedAvg average (strategy.opt_*)",
        lambda cfg: LedgeredFedYogi(**_server_opt(cfg), **_sampling(cfg)),
        without_server_lr=OWN_OPTIMIZER,
        weighted_mean=False,
    ),
    "fedadagrad": Entry(
        "Flower's FedAdagrad: server Adagrad step on the FedAvg average (strategy.opt_eta, opt_tau)",
        lambda cfg: LedgeredFedAdagrad(**_server_opt(cfg, with_betas=False), **_sampling(cfg)),
        without_server_lr=OWN_OPTIMIZER,
        weighted_mean=False,
    ),
    # Flower's server_learning_rate is the same step: with momentum 0 it is θ + η (average − θ).
    "fedavgm": Entry(
        "Flower's FedAvgM: server momentum (strategy.server_momentum, server_lr)",
        lambda cfg: LedgeredFedAvgM(
            server_learning_rate=cfg.strategy.server_lr,
            server_momentum=cfg.strategy.server_momentum,
            **_sampling(cfg),
        ),
        weighted_mean=False,
    ),
    "fedmedian": Entry(
        "Flower's FedMedian: coordinate-wise median of the client adapters",
        lambda cfg: LedgeredFedMedian(**_stepped(cfg)),
        weighted_mean=False,
    ),
    "fedtrimmedavg": Entry(
        "Flower's FedTrimmedAvg: coordinate-wise mean after cutting strategy.trim_beta per tail",
        lambda cfg: LedgeredFedTrimmedAvg(beta=cfg.strategy.trim_beta, **_stepped(cfg)),
        weighted_mean=False,
    ),
    "krum": Entry(
        "Flower's Krum: keep the update closest to its neighbours (strategy.krum_num_malicious)",
        lambda cfg: LedgeredKrum(
            num_malicious_nodes=cfg.strategy.krum_num_malicious, **_stepped(cfg)
        ),
        weighted_mean=False,
    ),
    "reward-weighted": Entry(
        "Naive rule: weights n_k * (raw mean reward - the run's declared minimum reward)",
        lambda cfg: RewardWeighted(reward_min=reward_floor(cfg), **_stepped(cfg)),
    ),
    "fgrpo": Entry(
        "FGRPO: weights n^gamma * exp(gain / tau), gain against each client's per-task EMA baselines",
        lambda cfg: Fgrpo(setup=_fgrpo_setup(cfg), **_stepped(cfg)),
    ),
    "fgrpo-adam": Entry(
        "FGRPO weighting followed by Flower's FedAdam server step (strategy.opt_*)",
        lambda cfg: FgrpoAdam(setup=_fgrpo_setup(cfg), **_server_opt(cfg), **_sampling(cfg)),
        without_server_lr=OWN_OPTIMIZER,
        weighted_mean=False,
    ),
    "local-only": Entry(
        "Reference: each client trains its own adapter all run; each is evaluated, and their mean "
        "reported",
        lambda cfg: LocalOnly(**_sampling(cfg)),
        federated=False,
        dp_wrappable=False,
        evaluation="clients",
        without_server_lr=NO_AGGREGATE,
        weighted_mean=False,
    ),
    "centralized": Entry(
        "Reference: one GRPOTrainer on the pooled data for the same total number of steps",
        None,
        federated=False,
        dp_wrappable=False,
        resumable=False,  # one trainer over all steps: its optimiser state is not checkpointed
        without_server_lr=NO_AGGREGATE,
        weighted_mean=False,
    ),
}


def strategy_entry(name: str) -> Entry:
    """The registry's entry for ``name``; ConfigError naming strategy.name for an unknown one."""
    if name not in STRATEGIES:
        raise ConfigError(
            "strategy.name", f"unknown strategy {name!r}; known: {', '.join(STRATEGIES)}"
        )
    return STRATEGIES[name]


def check_strategy(cfg: Config) -> None:
    """strategy.name is known, and takes the run's strategy.server_lr and privacy.dp."""
    entry = strategy_entry(cfg.strategy.name)
    if entry.without_server_lr and cfg.strategy.server_lr != 1.0:
        raise ConfigError(
            "strategy.server_lr",
            f"{cfg.strategy.name!r} cannot take it: {entry.without_server_lr}; leave it at 1",
        )
    if cfg.privacy.dp != "none" and not entry.dp_wrappable:
        raise ConfigError(
            "privacy.dp",
            f"{cfg.privacy.dp!r} needs a strategy that averages one adapter; "
            f"{cfg.strategy.name!r} does not",
        )
    mode = cfg.model.lora_aggregation
    if mode != "average" and not entry.federated:
        raise ConfigError(
            "model.lora_aggregation", f"{cfg.strategy.name!r} aggregates no adapters; leave average"
        )
    if cfg.federation.optimizer_state != "reset" and not entry.in_flower:
        raise ConfigError(
            "federation.optimizer_state",
            f"{cfg.strategy.name!r} is one trainer over all steps: its AdamW is kept already",
        )
    if mode == "exact" and cfg.privacy.dp != "none":  # R would undo the noise in product space
        raise ConfigError(
            "model.lora_aggregation",
            f"exact folds the clients' own products into the base, around privacy.dp's noise; "
            f"use average, ffa or rolora with {cfg.privacy.dp!r}",
        )
    if mode == "exact" and not entry.weighted_mean:
        raise ConfigError(
            "model.lora_aggregation",
            f"exact needs a weighted mean of the clients' adapters; {cfg.strategy.name!r} "
            "aggregates otherwise (fedavg, fedprox, scaffold, reward-weighted, fgrpo do)",
        )
    if mode == "fedsa" and (cfg.privacy.dp != "none" or not entry.dp_wrappable):
        raise ConfigError(
            "model.lora_aggregation",
            "fedsa shares the A factors alone; "
            + (
                f"privacy.dp {cfg.privacy.dp!r} is not calibrated for that"
                if cfg.privacy.dp != "none"
                else f"{cfg.strategy.name!r} replies with more than one adapter (control variates)"
            ),
        )
    check_privacy(cfg)


def build_strategy(cfg: Config) -> Strategy:
    """The registry's strategy, wrapped in Flower's DP wrapper when ``privacy.dp`` asks for one."""
    factory = strategy_entry(cfg.strategy.name).factory
    if factory is None:
        raise ValueError(
            f"strategy.name={cfg.strategy.name!r} is not a Flower strategy: "
            "fgrpo.runtime.runner trains it in one process"
        )
    return with_privacy(factory(cfg), cfg)
