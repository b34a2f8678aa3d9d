"""Aggregation strategies by name: Flower's where Flower has one, ours where it does not.

Every strategy the registry builds keeps ``self.ledger``: one row per participating
client with the weight that client actually had in the round's aggregate.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from flwr.serverapp.strategy import Strategy

from ...config import Config, ConfigError
from ...tasks.rewards import reward_ranges
from .baselines import (
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
from .fgrpo import Fgrpo, FgrpoAdam, FgrpoSetup
from .fgrpo_rule import FgrpoParams
from .local_only import LocalOnly
from .privacy import with_privacy
from .scaffold import Scaffold

CENTRALIZED = "centralized"


def _sampling(cfg: Config) -> dict[str, Any]:
    return {
        "fraction_train": cfg.federation.fraction_train,
        "fraction_evaluate": 0.0,  # evaluation is server-side on held-out prompts
        "min_train_nodes": cfg.federation.min_clients,
        "min_evaluate_nodes": 0,
        "min_available_nodes": cfg.federation.min_clients,
    }


def fgrpo_params(cfg: Config) -> FgrpoParams:
    s = cfg.strategy
    return FgrpoParams(
        gain_mode=s.gain,
        beta=s.beta,
        tau=s.tau,
        gamma=s.gamma,
        g_max=s.g_max,
        floor=s.floor,
        eps=s.eps,
        spread_floor=s.spread_floor,
        warmup_reports=s.warmup_reports,
    )


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


def _centralized(cfg: Config) -> Strategy:
    raise ValueError(
        "strategy.name='centralized' is not a federated strategy: fgrpo.experiments.runner.run_experiment "
        "trains it directly (fgrpo.server.centralized)"
    )


class Entry(NamedTuple):
    """One strategy: its one-line description, its factory and, where strategy.server_lr cannot
    apply, why (fgrpo.server.strategies.server_lr; the config refuses a server_lr other than 1)."""

    description: str
    factory: Callable[[Config], Strategy]
    without_server_lr: str = ""


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
    ),
    "fedadam": Entry(
        "Flower's FedAdam: server Adam step on the FedAvg average (strategy.opt_*)",
        lambda cfg: LedgeredFedAdam(**_server_opt(cfg), **_sampling(cfg)),
        OWN_OPTIMIZER,
    ),
    "fedyogi": Entry(
        "Flower's FedYogi: server Yogi step on the FedAvg average (strategy.opt_*)",
        lambda cfg: LedgeredFedYogi(**_server_opt(cfg), **_sampling(cfg)),
        OWN_OPTIMIZER,
    ),
    "fedadagrad": Entry(
        "Flower's FedAdagrad: server Adagrad step on the FedAvg average (strategy.opt_eta, opt_tau)",
        lambda cfg: LedgeredFedAdagrad(**_server_opt(cfg, with_betas=False), **_sampling(cfg)),
        OWN_OPTIMIZER,
    ),
    # Flower's server_learning_rate is the same step: with momentum 0 it is θ + η (average − θ).
    "fedavgm": Entry(
        "Flower's FedAvgM: server momentum (strategy.server_momentum, server_lr)",
        lambda cfg: LedgeredFedAvgM(
            server_learning_rate=cfg.strategy.server_lr,
            server_momentum=cfg.strategy.server_momentum,
            **_sampling(cfg),
        ),
    ),
    "fedmedian": Entry(
        "Flower's FedMedian: coordinate-wise median of the client adapters",
        lambda cfg: LedgeredFedMedian(**_stepped(cfg)),
    ),
    "fedtrimmedavg": Entry(
        "Flower's FedTrimmedAvg: coordinate-wise mean after cutting strategy.trim_beta per tail",
        lambda cfg: LedgeredFedTrimmedAvg(beta=cfg.strategy.trim_beta, **_stepped(cfg)),
    ),
    "krum": Entry(
        "Flower's Krum: keep the update closest to its neighbours (strategy.krum_num_malicious)",
        lambda cfg: LedgeredKrum(
            num_malicious_nodes=cfg.strategy.krum_num_malicious, **_stepped(cfg)
        ),
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
        OWN_OPTIMIZER,
    ),
    "local-only": Entry(
        "Reference: each client trains its own adapter all run; each is evaluated, and their mean reported",
        lambda cfg: LocalOnly(**_sampling(cfg)),
        NO_AGGREGATE,
    ),
    CENTRALIZED: Entry(
        "Reference: one GRPOTrainer on the pooled data for the same total number of steps",
        _centralized,
        NO_AGGREGATE,
    ),
}


def check_server_lr(cfg: Config) -> None:
    """strategy.server_lr other than 1 with a strategy it cannot apply to: refused, naming the
    key."""
    why = STRATEGIES[cfg.strategy.name].without_server_lr
    if why and cfg.strategy.server_lr != 1.0:
        raise ConfigError(
            "strategy.server_lr", f"{cfg.strategy.name!r} cannot take it: {why}; leave it at 1"
        )


def build_strategy(cfg: Config) -> Strategy:
    """The registry's strategy, wrapped in Flower's DP wrapper when ``privacy.dp`` asks for one."""
    try:
        factory = STRATEGIES[cfg.strategy.name].factory
    except KeyError:
        raise ValueError(
            f"strategy.name: unknown strategy {cfg.strategy.name!r}; known: {', '.join(STRATEGIES)}"
        ) from None
    return with_privacy(factory(cfg), cfg)
