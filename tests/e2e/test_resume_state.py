"""What a resume restores: every strategy's state, the checkpoint (adapter, strategy, RNG) even
after a crash mid-swap, and the clients' state files."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, RecordDict

from fgrpo.client.persistence import StateStore
from fgrpo.core.protocol import DELTA_VARIATE_KEY, TASK_MIX_KEY
from fgrpo.runtime.checkpoint import (
    Checkpoint,
    checkpoint_round,
    load_checkpoint,
    restore_rng,
    rng_state,
    save_checkpoint,
)
from fgrpo.runtime.configs import load_config
from fgrpo.server.strategies import STRATEGIES

from ..replies import reply, through_disk
from ..strategy_helpers import FakeGrid, make

# --- strategy state: every registered strategy continues exactly after a round trip --------


def round_replies(name: str, rnd: int) -> list:
    """Two clients whose adapters, rewards and (SCAFFOLD) variates change with the round."""
    out = []
    for cid, n, w, r in (
        ("a", 30, [3.0 + rnd, 1.0 - rnd], 0.2 * rnd),
        ("b", 10, [1.0, 5.0 * rnd], 0.5 / rnd),
    ):
        message = reply(cid, {"w": w}, n, r, {"addition": (r, 4)})
        if name == "scaffold":
            message.content[DELTA_VARIATE_KEY] = ArrayRecord(
                {"w": Array(np.asarray([0.1 * rnd, -0.2], dtype=np.float32))}
            )
        if name == "local-only":
            message.content[TASK_MIX_KEY] = ConfigRecord({"addition": n})
        out.append(message)
    return out


def play_round(strategy, name: str, rnd: int, x: np.ndarray) -> np.ndarray:
    replies = round_replies(
        name, rnd
    )  # first: building a reply gives the process a Flower task identity
    arrays = ArrayRecord({"w": Array(x.astype(np.float32))})
    list(strategy.configure_train(rnd, arrays, ConfigRecord({"fgrpo-config": "{}"}), FakeGrid(2)))
    aggregated, _ = strategy.aggregate_train(rnd, replies)
    return x if aggregated is None else aggregated["w"].numpy()


FEDERATED = [name for name, entry in STRATEGIES.items() if entry.resumable]


@pytest.mark.parametrize("name", FEDERATED)
def test_every_strategy_continues_after_its_state_went_through_a_checkpoint(name, tmp_path):
    settings = ("strategy.opt_eta=0.1", "strategy.server_momentum=0.5")
    original = make(name, *settings)
    x = np.zeros(2, dtype=np.float32)
    for rnd in (1, 2):
        x = play_round(original, name, rnd, x)
    restored = make(name, *settings)
    restored.load_state_dict(through_disk(original.state_dict(), tmp_path))
    for rnd in (3, 4):  # the restart happens between rounds 2 and 3
        x_original, x_restored = (
            play_round(original, name, rnd, x),
            play_round(restored, name, rnd, x),
        )
        np.testing.assert_array_equal(x_restored, x_original)
        assert restored.ledger == original.ledger
        x = x_original
    assert fingerprint(restored.state_dict()) == fingerprint(original.state_dict())


def fingerprint(state) -> str:
    return json.dumps(state, sort_keys=True, default=lambda a: [str(a.dtype), a.tolist()])


@pytest.mark.parametrize(
    "name, fields",
    [
        ("fedadam", ["fedopt"]),
        ("fedyogi", ["fedopt"]),
        ("fedadagrad", ["fedopt"]),
        ("fgrpo-adam", ["fedopt", "history"]),
        ("fedavgm", ["fedavgm"]),
        ("fgrpo", ["history"]),
        ("scaffold", ["control", "accepted"]),
        ("local-only", ["clients"]),
    ],
)
def test_stateful_strategies_checkpoint_their_state(name, fields):
    """The fresh strategy's state differs from a trained one's in every field that carries state."""
    trained = make(name, "strategy.server_momentum=0.5")
    x = np.zeros(2, dtype=np.float32)
    for rnd in (1, 2):
        x = play_round(trained, name, rnd, x)
    before, after = make(name).state_dict(), trained.state_dict()
    for field in fields:
        assert fingerprint(before.get(field)) != fingerprint(after[field]), field


# --- the checkpoint itself -------------------------------------------------------------


def test_checkpoint_round_trips_adapter_strategy_and_rng_and_survives_a_crash_mid_swap(tmp_path):
    from fgrpo.models.lora import fresh_adapter_model
    from fgrpo.models.transport import adapter_state

    model, _ = fresh_adapter_model(load_config(None, ["model.name=tiny-random"]).model, 0)
    adapter = {k: v + np.float32(0.1) * i for i, (k, v) in enumerate(adapter_state(model).items())}
    (tmp_path / "metrics.jsonl").write_text("")
    random.seed(5), np.random.seed(5), torch.manual_seed(5)
    strategy = {
        "control": {"w": np.arange(3, dtype=np.float32) / 7},
        "accepted": {"a": 2},
        "m": [np.ones(2)],
        "x": None,
    }
    saved = Checkpoint(
        round=2,
        adapter=adapter,
        strategy=strategy,
        rng=rng_state(),
        initial_eval={"eval": {"macro": 0.5}},
        metrics_bytes=0,
        run_id="r1",
        sessions=[1],
    )
    save_checkpoint(tmp_path, saved, model)
    draws = (random.random(), np.random.rand(), torch.rand(1).item())
    loaded = load_checkpoint(tmp_path)
    restore_rng(loaded.rng)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == draws
    assert (
        loaded.round == 2
        and loaded.run_id == "r1"
        and loaded.sessions == [1]
        and loaded.initial_eval == saved.initial_eval
    )
    assert set(loaded.adapter) == set(adapter) and all(
        np.array_equal(loaded.adapter[k], adapter[k]) for k in adapter
    )
    np.testing.assert_array_equal(loaded.strategy["control"]["w"], strategy["control"]["w"])
    assert loaded.strategy["accepted"] == {"a": 2} and loaded.strategy["x"] is None
    assert (
        tmp_path / "checkpoint" / "adapter" / "adapter_model.safetensors"
    ).is_file()  # PEFT format for export
    # A crash between the two renames of the next save: checkpoint/ gone, checkpoint.old/ complete.
    (tmp_path / "checkpoint").rename(tmp_path / "checkpoint.old")
    (tmp_path / "checkpoint.new").mkdir()  # a half-written next checkpoint is never read
    assert checkpoint_round(tmp_path) == 2 and load_checkpoint(tmp_path).run_id == "r1"


# --- client state on disk ----------------------------------------------------------------


def client_state(value: float) -> RecordDict:
    return RecordDict(
        {
            "c": ArrayRecord({"w": Array(np.asarray([value], dtype=np.float32))}),
            "n": ConfigRecord({"rounds": int(value)}),
        }
    )


def restored(store: StateStore, rnd: int) -> float | None:
    state = RecordDict()
    store.restore(state, rnd)
    return float(state["c"]["w"].numpy()[0]) if len(state) else None


def test_client_state_files_skip_rounds_a_resumed_run_redid_and_keep_two_files(tmp_path):
    first = StateStore(tmp_path, sessions=[])  # session 0
    for rnd in (1, 2, 4):
        first.save(client_state(rnd), rnd)
    assert restored(first, 1) is None and restored(first, 3) == 2.0 and restored(first, 5) == 4.0
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "round-2.session-0.state",
        "round-4.session-0.state",
    ]
    # The server crashed before checkpointing round 4; session 1 resumes after round 3.
    second = StateStore(tmp_path, sessions=[3])
    assert (
        restored(second, 4) == 2.0 and restored(second, 6) == 2.0
    )  # round 4 of session 0 is stale
    second.save(client_state(5.5), 5)
    assert restored(second, 6) == 5.5
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "round-2.session-0.state",
        "round-5.session-1.state",
    ]
    live = client_state(9)
    second.restore(live, 6)  # a client that still holds its state in memory keeps it
    assert float(live["c"]["w"].numpy()[0]) == 9.0
