"""Comparisons compare like with like: every strategy trains each client on the same rows.

The ClientApp's real ``train`` is fed the message each strategy's own ``configure_train`` builds
for round 1 (FGRPO asks for its probe signal, FedProx sends mu, SCAFFOLD its control variate);
what the trainer is handed and what the reply reports as ``num-examples`` must not depend on it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from flwr.app import Context, RecordDict

from fgrpo.client import app as client_app
from fgrpo.core.protocol import TASK_REWARDS_KEY, read_task_rewards
from fgrpo.data.partitions import prompt_key
from fgrpo.models.lora import fresh_adapter_model
from fgrpo.models.transport import adapter_state, to_arrayrecord
from fgrpo.runtime.configs import load_config
from fgrpo.server.federation import round_config
from fgrpo.server.strategies import build_strategy

from ..replies import reply
from ..strategy_helpers import FakeGrid

ROOT = Path(__file__).resolve().parents[2]
BASE = [
    "model.name=tiny-random",
    'data.tasks=["sorting", "addition"]',
    "data.train_size=48",
    "data.test_size=4",
    "grpo.max_completion_length=8",
    "federation.num_clients=2",
    "federation.local_steps=1",
    "grpo.per_device_train_batch_size=4",
    "data.probe_size=4",
    "eval.max_new_tokens=8",
]


def rows_and_sizes(strategy: str, monkeypatch) -> dict[int, tuple[list[str], int]]:
    cfg = load_config(None, [*BASE, f"strategy.name={strategy}"])
    seen: list[list[str]] = []
    real = client_app.train_locally

    def spy(model, tokenizer, dataset, *args, **kwargs):
        seen.append([prompt_key(r) for r in dataset])
        return real(model, tokenizer, dataset, *args, **kwargs)

    monkeypatch.setattr(client_app, "train_locally", spy)
    model, _ = fresh_adapter_model(cfg.model, seed=cfg.seed)
    reply("warm-up", {"w": [0.0]}, 1, 0.0)  # a Flower task identity for the test process
    messages = list(
        build_strategy(cfg).configure_train(
            1, to_arrayrecord(adapter_state(model)), round_config(cfg, 1), FakeGrid(2)
        )
    )
    out = {}
    for pid, msg in enumerate(messages):
        msg.content["config"]["server-round"] = 1
        context = Context(
            run_id=1,
            node_id=pid + 1,
            node_config={"partition-id": pid},
            state=RecordDict(),
            run_config={},
        )
        answer = client_app.train(msg, context)
        assert not answer.has_error(), answer.error if answer.has_error() else ""
        out[pid] = (seen[-1], int(answer.content["metrics"]["num-examples"]))
        tallied = read_task_rewards(
            answer.content.config_records[TASK_REWARDS_KEY]
        )  # every strategy's reply
        assert (
            tallied
            and set(tallied) <= {"sorting", "addition"}
            and all(n > 0 for _, n in tallied.values())
        )
    return out


def test_fgrpo_fedavg_fedprox_and_scaffold_train_each_client_on_identical_rows(monkeypatch):
    results = {
        name: rows_and_sizes(name, monkeypatch)
        for name in ("fgrpo", "fedavg", "fedprox", "scaffold")
    }
    reference = results["fedavg"]
    for _pid, (rows, size) in reference.items():
        assert size == len(rows) > 0
    for name, result in results.items():
        assert result == reference, name


@pytest.mark.parametrize("gain", ["range", "ratio", "zscore", "difference"])
def test_with_equal_gains_fgrpo_weights_are_fedavgs_on_a_size_skew_partition(gain):
    """Each client's real num-examples (its training rows, the same whatever the strategy) and the
    same signal for all, rising in round 2: FGRPO's weights are n_k / sum n, as FedAvg's are."""
    from fgrpo.data.probe_rows import client_rows

    cfg = load_config(
        None,
        [
            'data.partition="size-skew"',
            "federation.num_clients=4",
            "data.train_size=400",
            f"strategy.gain={gain}",
            "strategy.warmup_reports=1",
        ],
    )
    sizes = [len(client_rows(cfg, pid, {"partition-id": pid}).train) for pid in range(4)]
    assert len(set(sizes)) == 4  # a real size skew
    strategy = build_strategy(cfg)
    for rnd, p in ((1, 0.4), (2, 0.6), (3, 0.7)):
        replies = [
            reply(f"c{i}", {"w": [float(i)]}, n, p, tasks={"addition": (p, 8)})
            for i, n in enumerate(sizes)
        ]
        strategy.aggregate_train(rnd, replies)
        gains = [row["gain"] for row in strategy.ledger]
        assert len(set(gains)) == 1 and (rnd == 1 or gains[0] > 0)
        assert [row["weight"] for row in strategy.ledger] == pytest.approx(
            [n / sum(sizes) for n in sizes]
        )


@pytest.mark.parametrize("gain", ["default", "range", "ratio", "zscore"])
def test_one_probe_row_flipping_moves_no_weight_more_than_2x_against_fedavg(gain):
    """The audit's case, everywhere: the demo partition's real probes, every task scoring 0 (b = 0,
    where the old ratio gain divided by 1e-6; past zscore's warm-up, with no spread yet), then one
    row of one task of one client flips to the task's maximum; every client's weight stays within
    2x of its FedAvg weight."""
    from fgrpo.data.probe_rows import client_rows
    from fgrpo.tasks.rewards import reward_ranges

    overrides = [] if gain == "default" else [f"strategy.gain={gain}"]
    cfg = load_config(ROOT / "configs" / "demo.toml", overrides)
    rows = [
        client_rows(cfg, pid, {"partition-id": pid}) for pid in range(cfg.federation.num_clients)
    ]
    sizes = [len(r.train) for r in rows]
    probes = [
        {t: sum(1 for row in r.probe if row["task"] == t) for t in {row["task"] for row in r.probe}}
        for r in rows
    ]
    ranges = reward_ranges(cfg)

    def replies(flip: tuple[int, str] | None):
        return [
            reply(
                f"client-{k}",
                {"w": [0.0]},
                sizes[k],
                0.0,
                tasks={
                    t: (ranges[t][0] + (ranges[t][1] - ranges[t][0]) / n * ((k, t) == flip), n)
                    for t, n in probe.items()
                },
            )
            for k, probe in enumerate(probes)
        ]

    fedavg = [n / sum(sizes) for n in sizes]
    worst = 1.0
    for k, probe in enumerate(probes):
        for task in probe:
            strategy = build_strategy(cfg)
            quiet = max(
                1, cfg.strategy.warmup_reports
            )  # zscore counts a gain from its warm-up report on
            for rnd in range(1, quiet + 1):
                strategy.aggregate_train(rnd, replies(None))  # every baseline at the task's minimum
            strategy.aggregate_train(quiet + 1, replies((k, task)))
            assert strategy.ledger[k]["gain"] > 0  # the flip counted
            weights = [row["weight"] for row in strategy.ledger]
            worst = max(worst, *(max(w / f, f / w) for w, f in zip(weights, fedavg, strict=True)))
    assert worst <= 2.0
