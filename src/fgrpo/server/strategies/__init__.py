"""Aggregation strategies by name: Flower's where Flower has one, ours where it does not.

Every strategy the registry builds keeps ``self.ledger``: one row per participating
client with the weight that client actually had in the round's aggregate.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flwr.serverapp.strategy import Strategy

from ...config import Config
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
    return FgrpoParams(gain_mode=s.gain, beta=s.beta, tau=s.tau, gamma=s.gamma, g_max=s.g_max, floor=s.floor,
                       eps=s.eps, spread_floor=s.spread_floor, warmup_reports=s.warmup_reports)


def _fgrpo_setup(cfg: Config) -> FgrpoSetup:
    return FgrpoSetup(fgrpo_params(cfg), cfg.strategy.signal, cfg.strategy.baseline_at, reward_ranges(cfg))


def _server_opt(cfg: Config, with_betas: bool = True) -> dict[str, Any]:
    """Flower FedOpt's constants; eta_l (informational in Flower) is the clients' learning rate."""
    s = cfg.strategy
    opt = {"eta": s.opt_eta, "eta_l": float(cfg.grpo_settings()["learning_rate"]), "tau": s.opt_tau}
    if with_betas:
        opt.update(beta_1=s.opt_beta_1, beta_2=s.opt_beta_2)
    return opt


def _fgrpo(cfg: Config) -> Strategy:
    return Fgrpo(setup=_fgrpo_setup(cfg), server_lr=cfg.strategy.server_lr, **_sampling(cfg))


def _centralized(cfg: Config) -> Strategy:
    raise ValueError(
        "strategy.name='centralized' is not a federated strategy: fgrpo.experiments.runner.run_experiment "
        "trains it directly (fgrpo.server.centralized)"
    )


STRATEGIES: dict[str, tuple[str, Callable[[Config], Strategy]]] = {
    "fedavg": ("Flower's FedAvg: weights proportional to num-examples",
               lambda cfg: LedgeredFedAvg(**_sampling(cfg))),
    "fedprox": ("Flower's FedProx: FedAvg + client loss mu/2*||theta - theta_global||^2 (strategy.proximal_mu)",
                lambda cfg: LedgeredFedProx(proximal_mu=cfg.strategy.proximal_mu, **_sampling(cfg))),
    "scaffold": ("SCAFFOLD option II: client/server control variates correct every local step",
                 lambda cfg: Scaffold(server_lr=cfg.strategy.server_lr, **_sampling(cfg))),
    "fedadam": ("Flower's FedAdam: server Adam step on the FedAvg average (strategy.opt_*)",
                lambda cfg: LedgeredFedAdam(**_server_opt(cfg), **_sampling(cfg))),
    "fedyogi": ("Flower's FedYogi: server Yogi step on the FedAvg average (strategy.opt_*)",
                lambda cfg: LedgeredFedYogi(**_server_opt(cfg), **_sampling(cfg))),
    "fedadagrad": ("Flower's FedAdagrad: server Adagrad step on the FedAvg average (strategy.opt_eta, opt_tau)",
                   lambda cfg: LedgeredFedAdagrad(**_server_opt(cfg, with_betas=False), **_sampling(cfg))),
    "fedavgm": ("Flower's FedAvgM: server momentum (strategy.server_momentum, server_lr)",
                lambda cfg: LedgeredFedAvgM(server_learning_rate=cfg.strategy.server_lr,
                                            server_momentum=cfg.strategy.server_momentum, **_sampling(cfg))),
    "fedmedian": ("Flower's FedMedian: coordinate-wise median of the client adapters",
                  lambda cfg: LedgeredFedMedian(**_sampling(cfg))),
    "fedtrimmedavg": ("Flower's FedTrimmedAvg: coordinate-wise mean after cutting strategy.trim_beta per tail",
                      lambda cfg: LedgeredFedTrimmedAvg(beta=cfg.strategy.trim_beta, **_sampling(cfg))),
    "krum": ("Flower's Krum: keep the update closest to its neighbours (strategy.krum_num_malicious)",
             lambda cfg: LedgeredKrum(num_malicious_nodes=cfg.strategy.krum_num_malicious, **_sampling(cfg))),
    "reward-weighted": ("Naive rule: weights n_k * (raw mean reward - the run's declared minimum reward)",
                        lambda cfg: RewardWeighted(reward_min=reward_floor(cfg), server_lr=cfg.strategy.server_lr,
                                                   **_sampling(cfg))),
    "fgrpo": ("FGRPO: weights n^gamma * exp(gain / tau), gain against each client's per-task EMA baselines", _fgrpo),
    "fgrpo-adam": ("FGRPO weighting followed by Flower's FedAdam server step (strategy.opt_*)",
                   lambda cfg: FgrpoAdam(setup=_fgrpo_setup(cfg), **_server_opt(cfg), **_sampling(cfg))),
    "local-only": ("Reference: each client trains its own adapter all run; each is evaluated, and their mean reported",
                   lambda cfg: LocalOnly(**_sampling(cfg))),
    CENTRALIZED: ("Reference: one GRPOTrainer on the pooled data for the same total number of steps",
                  _centralized),
}


def build_strategy(cfg: Config) -> Strategy:
    """The registry's strategy, wrapped in Flower's DP wrapper when ``privacy.dp`` asks for one."""
    try:
        _, factory = STRATEGIES[cfg.strategy.name]
    except KeyError:
        raise ValueError(f"strategy.name: unknown strategy {cfg.strategy.name!r}; known: {', '.join(STRATEGIES)}") from None
    return with_privacy(factory(cfg), cfg)
