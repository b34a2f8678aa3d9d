"""Every aggregation rule on hand-built client replies, checked against numbers computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, RecordDict

from fgrpo.client.algorithms import proximal_term
from fgrpo.core.errors import ConfigError
from fgrpo.core.protocol import DELTA_VARIATE_KEY, KEEP_LOCAL_KEY, TASK_MIX_KEY
from fgrpo.runtime.configs import load_config
from fgrpo.server.screening import screen_replies
from fgrpo.server.strategies import STRATEGIES, build_strategy
from fgrpo.server.strategies.baselines import reward_floor, reward_weights

from .replies import reply


class FakeGrid:
    """What Flower's sampling needs from a Grid: the connected node ids."""

    def __init__(self, n: int) -> None:
        self.nodes = list(range(1, n + 1))

    def get_node_ids(self) -> list[int]:
        return self.nodes


# The rollout-reward signal at tau = 1: replies carry per-task training rewards, weights worked by
# hand.
BY_HAND = ("strategy.signal=train-reward", "strategy.tau=1.0")


def make(name: str, *overrides: str):
    cfg = load_config(None, [f"strategy.name={name}", "federation.num_clients=8", *overrides])
    return build_strategy(cfg)


def configure(strategy, x: list[float], nodes: int = 2) -> list[Message]:
    reply("warm-up", {"w": [0.0]}, 1, 0.0)  # gives the test process a Flower task identity
    arrays = ArrayRecord({"w": Array(np.asarray(x, dtype=np.float32))})
    return list(
        strategy.configure_train(1, arrays, ConfigRecord({"fgrpo-config": "{}"}), FakeGrid(nodes))
    )


def aggregate(strategy, rnd: int, replies: list[Message]) -> np.ndarray:
    arrays, _ = strategy.aggregate_train(rnd, replies)
    return arrays["w"].numpy()


def weights(strategy) -> list[float]:
    return [row["weight"] for row in strategy.ledger]


# Two clients used throughout: a has 30 examples, b has 10.
def two_replies(ra: float = 0.5, rb: float = 0.3) -> list[Message]:
    return [reply("a", {"w": [3.0, 1.0]}, 30, ra), reply("b", {"w": [1.0, 5.0]}, 10, rb)]


FEDAVG = [0.75 * 3 + 0.25 * 1, 0.75 * 1 + 0.25 * 5]  # [2.5, 2.0]


def test_registry_covers_the_issue_and_every_entry_has_a_description():
    expected = {
        "fedavg",
        "fedprox",
        "scaffold",
        "fedadam",
        "fedyogi",
        "fedadagrad",
        "fedavgm",
        "fedmedian",
        "fedtrimmedavg",
        "krum",
        "reward-weighted",
        "fgrpo",
        "fgrpo-adam",
        "local-only",
        "centralized",
    }
    assert set(STRATEGIES) == expected
    assert all(e.description and "\n" not in e.description for e in STRATEGIES.values())


def test_config_validates_strategy_name_and_constants():
    with pytest.raises(ConfigError) as err:
        load_config(None, ["strategy.name=fedsgd"])
    assert err.value.key == "strategy.name"
    for bad, key in [
        ("strategy.trim_beta=0.5", "strategy.trim_beta"),
        ("strategy.proximal_mu=-1", "strategy.proximal_mu"),
        ("strategy.krum_num_malicious=-1", "strategy.krum_num_malicious"),
        ("strategy.opt_beta_1=1.5", "strategy.opt_beta_1"),
        ("strategy.opt_tau=0", "strategy.opt_tau"),
    ]:
        with pytest.raises(ConfigError) as err:
            load_config(None, [bad])
        assert err.value.key == key


def test_config_keys_reach_the_strategies():
    assert make("fedprox", "strategy.proximal_mu=0.25").proximal_mu == 0.25
    adam = make(
        "fedadam",
        "strategy.opt_eta=0.05",
        "strategy.opt_beta_1=0.5",
        "strategy.opt_beta_2=0.75",
        "strategy.opt_tau=0.01",
        "grpo.learning_rate=0.002",
    )
    assert (adam.eta, adam.beta_1, adam.beta_2, adam.tau, adam.eta_l) == (
        0.05,
        0.5,
        0.75,
        0.01,
        0.002,
    )
    avgm = make("fedavgm", "strategy.server_momentum=0.5", "strategy.server_lr=0.7")
    assert (avgm.server_momentum, avgm.server_learning_rate) == (0.5, 0.7)
    assert make("fedtrimmedavg", "strategy.trim_beta=0.3").beta == 0.3
    assert make("krum", "strategy.krum_num_malicious=2").num_malicious_nodes == 2
    with pytest.raises(ValueError, match="centralized"):
        make("centralized")


# --- FedAvg family ------------------------------------------------------------


def test_fedavg_is_the_num_examples_weighted_mean():
    s = make("fedavg")
    configure(s, [0.0, 0.0])
    np.testing.assert_allclose(aggregate(s, 1, two_replies()), FEDAVG, rtol=1e-6)
    assert weights(s) == pytest.approx([0.75, 0.25])
    assert [row["client-id"] for row in s.ledger] == ["a", "b"]


def test_fedprox_sends_mu_and_with_mu_zero_equals_fedavg():
    prox = make("fedprox", "strategy.proximal_mu=0.3")
    messages = configure(prox, [0.0, 0.0])
    assert messages and all(
        m.content["config"]["proximal-mu"] == pytest.approx(0.3) for m in messages
    )
    np.testing.assert_allclose(aggregate(prox, 1, two_replies()), FEDAVG, rtol=1e-6)

    prox0, avg = make("fedprox", "strategy.proximal_mu=0"), make("fedavg")
    configure(prox0, [0.0, 0.0])
    configure(avg, [0.0, 0.0])
    np.testing.assert_array_equal(
        aggregate(prox0, 1, two_replies()), aggregate(avg, 1, two_replies())
    )
    assert weights(prox0) == weights(avg)


def test_proximal_term_is_half_mu_times_squared_distance():
    params = {"a": torch.tensor([1.0, 2.0]), "b": torch.tensor([[3.0]])}
    anchor = {"a": torch.tensor([0.0, 1.0]), "b": torch.tensor([[1.0]])}
    # ||(1, 1)||^2 + ||2||^2 = 2 + 4 = 6
    assert proximal_term(params, anchor, 0.5).item() == pytest.approx(0.25 * 6)
    assert proximal_term(params, anchor, 0.0).item() == 0.0


def test_fedavgm_momentum_by_hand():
    s = make("fedavgm", "strategy.server_momentum=0.9", "strategy.server_lr=1.0")
    configure(s, [1.0, 1.0])
    x1 = aggregate(
        s, 1, two_replies()
    )  # pseudo-gradient (1,1) - (2.5,2) = (-1.5,-1); first momentum = it
    np.testing.assert_allclose(x1, [2.5, 2.0], rtol=1e-6)
    configure(s, x1.tolist())
    x2 = aggregate(
        s, 2, [reply("a", {"w": [3.0, 3.0]}, 30, 0.1), reply("b", {"w": [3.0, 3.0]}, 10, 0.1)]
    )
    # pg = (2.5,2) - (3,3) = (-0.5,-1); m = 0.9*(-1.5,-1) + pg = (-1.85,-1.9); x = x1 - m
    np.testing.assert_allclose(x2, [2.5 + 1.85, 2.0 + 1.9], rtol=1e-6)


def adam_by_hand(x0, d, eta, b1, b2, tau, rnd):
    m = (1 - b1) * d
    v = (1 - b2) * d * d
    eta_norm = eta * math.sqrt(1 - b2 ** (rnd + 1)) / (1 - b1 ** (rnd + 1))
    return x0 + eta_norm * m / (math.sqrt(v) + tau)


OPT = [
    "strategy.opt_eta=0.1",
    "strategy.opt_beta_1=0.9",
    "strategy.opt_beta_2=0.99",
    "strategy.opt_tau=0.001",
]


def test_fedadam_by_hand():
    s = make("fedadam", *OPT)
    configure(s, [1.0, 1.0])
    got = aggregate(s, 1, two_replies())
    expected = [adam_by_hand(1.0, d, 0.1, 0.9, 0.99, 0.001, 1) for d in (1.5, 1.0)]
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    assert weights(s) == pytest.approx([0.75, 0.25])  # the average Adam steps on


def test_fedyogi_by_hand():
    s = make("fedyogi", *OPT)
    configure(s, [1.0, 1.0])
    got = aggregate(s, 1, two_replies())
    # v0 = 0: v = 0 - 0.01 d^2 sign(0 - d^2) = 0.01 d^2; m = 0.1 d; x = x0 + eta m / (sqrt(v) + tau)
    expected = [1.0 + 0.1 * (0.1 * d) / (math.sqrt(0.01 * d * d) + 0.001) for d in (1.5, 1.0)]
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_fedadagrad_by_hand():
    s = make("fedadagrad", *OPT)
    configure(s, [1.0, 1.0])
    got = aggregate(s, 1, two_replies())
    expected = [1.0 + 0.1 * d / (abs(d) + 0.001) for d in (1.5, 1.0)]  # m = d, v = d^2
    np.testing.assert_allclose(got, expected, rtol=1e-5)


# --- robust rules ---------------------------------------------------------------


def test_fedmedian_odd_and_even_with_honest_weights():
    s = make("fedmedian")
    configure(s, [0.0, 0.0])
    replies = [
        reply("a", {"w": [1.0, 10.0]}, 5, 0.1),
        reply("b", {"w": [2.0, 20.0]}, 50, 0.1),
        reply("c", {"w": [9.0, 0.0]}, 5, 0.1),
    ]
    np.testing.assert_allclose(aggregate(s, 1, replies), [2.0, 10.0])
    # coordinate 0 is b's value, coordinate 1 is a's: each counts for half of the coordinates
    assert weights(s) == pytest.approx([0.5, 0.5, 0.0])

    replies = [
        reply(c, {"w": [v, 0.0]}, 5, 0.1)
        for c, v in zip("abcd", [4.0, 1.0, 3.0, 2.0], strict=False)
    ]
    np.testing.assert_allclose(aggregate(s, 2, replies), [2.5, 0.0])
    # coord 0: ranks 1,2 are d (2) and c (3), 1/2 each; coord 1 (all equal, ties by order): b and c
    assert weights(s) == pytest.approx([0.0, 0.25, 0.5, 0.25])


def test_fedtrimmedavg_by_hand():
    s = make("fedtrimmedavg", "strategy.trim_beta=0.2")  # 5 clients: int(0.2 * 5) = 1 cut per tail
    configure(s, [0.0])
    values = {"a": 100.0, "b": 2.0, "c": 3.0, "d": -50.0, "e": 4.0}
    replies = [reply(c, {"w": [v]}, 5, 0.1) for c, v in values.items()]
    np.testing.assert_allclose(aggregate(s, 1, replies), [(2.0 + 3.0 + 4.0) / 3])
    assert weights(s) == pytest.approx([0.0, 1 / 3, 1 / 3, 0.0, 1 / 3])


def test_krum_keeps_the_most_central_update():
    s = make("krum", "strategy.krum_num_malicious=0")
    configure(s, [0.0])
    # n - f - 2 = 2 nearest: scores 0->1+4, 1->1+1, 2->1+4, 10->64+81: client "one" wins
    replies = [
        reply(c, {"w": [v]}, 5, 0.1)
        for c, v in {"zero": 0.0, "one": 1.0, "two": 2.0, "ten": 10.0}.items()
    ]
    np.testing.assert_allclose(aggregate(s, 1, replies), [1.0])
    assert weights(s) == [0.0, 1.0, 0.0, 0.0]


# --- reward-weighted and FGRPO ---------------------------------------------------


def test_reward_weights_by_hand_including_negative_rewards():
    # w_k ∝ n_k (r_k − r_min) with the run's declared floor, not the sampled minimum
    np.testing.assert_allclose(reward_weights([0.5, 0.3], [10, 10], 0.0), [0.625, 0.375])
    np.testing.assert_allclose(
        reward_weights([0.5, 0.3], [30, 10], 0.0), [15 / 18, 3 / 18]
    )  # n_k kept
    # countdown's floor −1: raw n(r + 1) = 10·0.2, 10·2, 20·1 -> the worst client still counts
    np.testing.assert_allclose(
        reward_weights([-0.8, 1.0, 0.0], [10, 10, 20], -1.0), [2 / 42, 20 / 42, 20 / 42]
    )
    np.testing.assert_allclose(
        reward_weights([-1.0, -1.0], [10, 30], -1.0), [0.25, 0.75]
    )  # all at the floor: FedAvg
    np.testing.assert_allclose(
        reward_weights([-3.0, 1.0], [10, 10], -1.0), [0.0, 1.0]
    )  # below the declared floor
    with pytest.raises(ValueError):
        reward_weights([float("nan"), 1.0], [1, 1], 0.0)


def test_reward_floor_is_the_lowest_declared_reward_of_the_runs_tasks():
    floor = lambda *o: reward_floor(load_config(None, list(o)))  # noqa: E731
    assert floor('data.tasks=["addition", "sorting"]') == 0.0
    assert floor('data.tasks=["addition", "countdown"]') == -1.0
    assert (
        floor('data.tasks=["addition", "countdown"]', "data.reward_scale={countdown = 3.0}") == -3.0
    )
    assert make("reward-weighted").reward_min == -1.0  # the default task list includes countdown


def test_reward_weighted_aggregate():
    s = make("reward-weighted")  # r_min = −1: raw weights 30·1.5 = 45 and 10·1.3 = 13
    configure(s, [0.0, 0.0])
    got = aggregate(s, 1, two_replies(0.5, 0.3))
    wa, wb = 45 / 58, 13 / 58
    np.testing.assert_allclose(got, [wa * 3 + wb * 1, wa * 1 + wb * 5], rtol=1e-6)
    assert weights(s) == pytest.approx([wa, wb])


def run_two_rounds(name: str, scale_b: float) -> list[list[float]]:
    s = make(name, *BY_HAND, "strategy.gain=ratio")  # worked by hand below
    out = []
    for rnd, (ra, rb) in enumerate([(0.2, 4.0), (0.3, 2.0)], start=1):
        configure(s, [0.0, 0.0])
        aggregate(
            s,
            rnd,
            [
                reply("a", {"w": [1.0, 0.0]}, 10, ra),
                reply("b", {"w": [0.0, 1.0]}, 10, rb * scale_b),
            ],
        )
        out.append(weights(s))
    return out


def test_scaling_one_clients_rewards_changes_reward_weighted_but_not_fgrpo():
    plain, scaled = run_two_rounds("reward-weighted", 1.0), run_two_rounds("reward-weighted", 1e3)
    assert plain[0] == pytest.approx([1.2 / 6.2, 5.0 / 6.2])  # r − r_min with r_min = −1
    assert scaled[0] == pytest.approx([1.2 / 4002.2, 4001.0 / 4002.2])
    assert not np.allclose(plain, scaled)
    plain, scaled = run_two_rounds("fgrpo", 1.0), run_two_rounds("fgrpo", 1e3)
    np.testing.assert_allclose(plain, scaled, rtol=1e-9)
    # round 2 by hand: gains +0.5 (0.2 -> 0.3) and -0.5 (4 -> 2), tau = 1, equal sizes
    e = math.exp(1.0)
    assert plain[1] == pytest.approx([e / (e + 1), 1 / (e + 1)])


def test_fgrpo_adam_is_fgrpo_weights_then_fedadam_step():
    s = make("fgrpo-adam", *OPT, *BY_HAND, "strategy.gain=ratio")
    assert next(c for c in type(s).__mro__ if "aggregate_train" in vars(c)).__name__ == "FedAdam"
    configure(s, [0.0, 0.0])
    x1 = aggregate(
        s, 1, [reply("a", {"w": [1.0, 0.0]}, 10, 0.2), reply("b", {"w": [0.0, 1.0]}, 10, 4.0)]
    )
    # round 1: gains 0, weights 1/2: d = (0.5, 0.5)
    np.testing.assert_allclose(
        x1, [adam_by_hand(0.0, 0.5, 0.1, 0.9, 0.99, 0.001, 1)] * 2, rtol=1e-5
    )
    configure(s, x1.tolist())
    x2 = aggregate(
        s, 2, [reply("a", {"w": [1.0, 0.0]}, 10, 0.3), reply("b", {"w": [0.0, 1.0]}, 10, 2.0)]
    )
    e = math.exp(1.0)
    wa, wb = e / (e + 1), 1 / (e + 1)
    assert weights(s) == pytest.approx([wa, wb])
    expected = []
    for k, w_a in enumerate([wa, wb]):  # FGRPO average minus x1, then Adam with carried moments
        d1, d2 = 0.5, (w_a - x1[k])
        m = 0.9 * (0.1 * d1) + 0.1 * d2
        v = 0.99 * (0.01 * d1 * d1) + 0.01 * d2 * d2
        eta_norm = 0.1 * math.sqrt(1 - 0.99**3) / (1 - 0.9**3)
        expected.append(x1[k] + eta_norm * m / (math.sqrt(v) + 0.001))
    np.testing.assert_allclose(x2, expected, rtol=1e-5)


# --- local-only ---------------------------------------------------------------------


def local_reply(cid: str, w: list[float], mix: dict[str, int]) -> Message:
    message = reply(cid, {"w": w}, sum(mix.values()), 0.1)
    message.content[TASK_MIX_KEY] = ConfigRecord(mix)
    return message


def by_hand_accuracy(state: dict[str, np.ndarray]) -> dict[str, float]:
    """Stands in for greedy evaluation: accuracy read off the adapter, so the means are
    checkable."""
    addition, sorting = (float(v) / 10 for v in state["w"])
    return {
        "eval": {"addition": addition, "sorting": sorting, "macro": (addition + sorting) / 2},
        "eval_se": {"addition": 0.1, "sorting": 0.2, "macro": 0.15},
    }


def test_local_only_keeps_the_global_adapter_and_evaluates_each_clients_own_model():
    s = make("local-only")
    messages = configure(s, [0.0, 0.0])
    assert messages[0].content["config"][KEEP_LOCAL_KEY] is True
    arrays, _ = s.aggregate_train(
        1,
        [
            local_reply("a", [3.0, 1.0], {"addition": 30, "sorting": 10}),
            local_reply("b", [1.0, 5.0], {"sorting": 10}),
        ],
    )
    assert arrays is None  # nothing learnt by one client is ever sent to another
    assert weights(s) == [0.5, 0.5]
    got = s.evaluate_clients(by_hand_accuracy)
    a, b = got["clients"]["a"], got["clients"]["b"]
    assert a["global"] == pytest.approx({"addition": 0.3, "sorting": 0.1, "macro": 0.2})
    assert a["own-mix"] == pytest.approx((30 * 0.3 + 10 * 0.1) / 40)  # 0.25
    assert b["own-mix"] == pytest.approx(0.5)  # sorting only
    assert got["mean"]["global"] == pytest.approx({"addition": 0.2, "sorting": 0.3, "macro": 0.25})
    assert got["mean"]["own-mix"] == pytest.approx(0.375)
    assert got["mean"]["global_se"] == pytest.approx(
        {"addition": 0.1, "sorting": 0.2, "macro": 0.15}
    )
    s.aggregate_train(
        2, [local_reply("a", [5.0, 5.0], {"addition": 30, "sorting": 10})]
    )  # b sits out
    got = s.evaluate_clients(by_hand_accuracy)
    assert got["clients"]["a"]["own-mix"] == pytest.approx(0.5) and got["clients"]["b"][
        "own-mix"
    ] == pytest.approx(0.5)
    assert got["mean"]["global"]["macro"] == pytest.approx((0.5 + 0.3) / 2)
    assert weights(s) == [0.5]


# --- the federation loop's handling of replies ---------------------------------------


def test_screen_replies_widens_the_adapter_record_even_when_it_is_not_first():
    reply("warm-up", {"w": [0.0]}, 1, 0.0)
    content = RecordDict(
        {
            DELTA_VARIATE_KEY: ArrayRecord({"w": Array(np.asarray([0.5], dtype=np.float32))}),
            "arrays": ArrayRecord({"w": Array(np.asarray([1.0], dtype=np.float32))}),
            "metrics": two_replies()[0].content["metrics"],
            "client": ConfigRecord({"client-id": "a"}),
        }
    )
    sent = {"w": np.zeros(1, dtype=np.float32)}
    kept, failures = screen_replies(
        [Message(content=content, dst_node_id=0, message_type="train")], sent
    )
    assert len(kept) == 1 and not failures
    np.testing.assert_array_equal(kept[0].content["arrays"]["w"].numpy(), [1.0])
    np.testing.assert_array_equal(kept[0].content[DELTA_VARIATE_KEY]["w"].numpy(), [0.5])


@pytest.mark.parametrize("name", [n for n in STRATEGIES if n != "centralized"])
def test_every_strategy_logs_weights_that_sum_to_one_with_full_participation(name):
    s = make(name)
    configure(s, [0.0, 0.0], nodes=3)
    replies = [
        reply(c, {"w": [i, 2.0 * i]}, 10 * (i + 1), 0.1 * (i + 1)) for i, c in enumerate("abc")
    ]
    for m in replies:
        if name == "scaffold":
            m.content[DELTA_VARIATE_KEY] = ArrayRecord({"w": Array(np.zeros(2, dtype=np.float32))})
        m.content[TASK_MIX_KEY] = ConfigRecord({"addition": 1})  # local-only's
    arrays, _ = s.aggregate_train(1, replies)
    assert name == "local-only" or (arrays is not None and np.all(np.isfinite(arrays["w"].numpy())))
    assert [row["client-id"] for row in s.ledger] == ["a", "b", "c"]
    assert sum(weights(s)) == pytest.approx(1.0) and min(weights(s)) >= 0


# --- the client side on a real (tiny) model ------------------------------------------

TINY = [
    "model.name=tiny-random",
    'data.tasks=["sorting"]',
    "data.train_size=32",
    "data.test_size=4",
    "grpo.max_completion_length=8",
    "federation.num_clients=1",
    "federation.local_steps=2",
]


def local_training(trainer_cls, **kwargs) -> dict[str, np.ndarray]:
    from fgrpo.client.grpo import train_locally
    from fgrpo.data.partitions import client_partition
    from fgrpo.models.lora import fresh_adapter_model
    from fgrpo.models.transport import adapter_state

    cfg = load_config(None, TINY + ["grpo.learning_rate=0.05"])
    model, tokenizer = fresh_adapter_model(cfg.model, seed=0)
    extra = kwargs.pop("make_kwargs", lambda m: {})(model)
    train_locally(
        model,
        tokenizer,
        client_partition(cfg, 0),
        [completion_length_reward],
        cfg,
        seed=7,
        steps=cfg.federation.local_steps,
        trainer_cls=trainer_cls,
        **extra,
        **kwargs,
    )
    return adapter_state(model)


def completion_length_reward(completions, **kwargs) -> list[float]:
    """Varies across a random model's samples, so GRPO always has a non-zero advantage."""
    return [float(len(str(c))) for c in completions]


def prox_kwargs(mu: float):
    from fgrpo.client.algorithms import ProximalTerm, adapter_parameters

    return lambda model: {"proximal": ProximalTerm(adapter_parameters(model), mu)}


def test_fedprox_client_with_mu_zero_trains_exactly_like_grpo_and_mu_pulls_towards_the_global():
    from trl import GRPOTrainer

    from fgrpo.client.algorithms import FedProxGRPOTrainer
    from fgrpo.core.config import ModelConfig
    from fgrpo.models.lora import fresh_adapter_model
    from fgrpo.models.transport import adapter_state

    start = adapter_state(fresh_adapter_model(ModelConfig(name="tiny-random"), seed=0)[0])
    plain = local_training(GRPOTrainer)
    prox0 = local_training(FedProxGRPOTrainer, make_kwargs=prox_kwargs(0.0))
    for k in plain:
        np.testing.assert_array_equal(prox0[k], plain[k])
    moved = sum(float(((plain[k] - start[k]) ** 2).sum()) for k in start)
    assert moved > 0, "training must move the adapter for the comparison to mean anything"
    strong = local_training(FedProxGRPOTrainer, make_kwargs=prox_kwargs(1e4))
    assert sum(float(((strong[k] - start[k]) ** 2).sum()) for k in start) < moved
