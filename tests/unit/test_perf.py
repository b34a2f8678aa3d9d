"""The performance settings: torch threads, the frozen heap, TRL's checkpointing,
vLLM."""

from __future__ import annotations

import gc
import os
import threading
from pathlib import Path
from queue import Queue
from types import SimpleNamespace

import pytest
import torch
from flwr.server.superlink.fleet.vce import vce_api

from fgrpo.client.grpo import grpo_args
from fgrpo.core.errors import ConfigError
from fgrpo.models import lora
from fgrpo.models.cpu import torch_threads
from fgrpo.models.transport import adapter_state, load_adapter_state
from fgrpo.runtime import centralized, flower_dispatch, journal, round0
from fgrpo.runtime.configs import load_config
from fgrpo.runtime.grpo_check import check_grpo_settings

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


class Stop(Exception):
    pass


def test_torch_threads_sets_the_count_and_restores_it_even_on_error():
    before = torch.get_num_threads()
    with pytest.raises(Stop), torch_threads(1):
        assert torch.get_num_threads() == 1
        raise Stop
    assert torch.get_num_threads() == before


def test_server_evaluation_runs_with_eval_threads(tmp_path, monkeypatch):
    cfg = load_config(
        None,
        ["data.test_size=3", "data.tasks=addition", "eval.threads=1", "eval.concurrent_tasks=3"],
    )
    seen = []
    monkeypatch.setattr(
        journal,
        "accuracy_by_task",
        lambda *a, **k: (
            seen.append((torch.get_num_threads(), k["concurrent_tasks"]))
            or {"addition": 1.0, "macro": 1.0}
        ),
    )
    run = journal.RunJournal(cfg, tmp_path / "run", print)
    with torch_threads(2):
        run.evaluate()
        assert torch.get_num_threads() == 2  # restored for whatever the server does next
    assert seen == [(1, 3)]


def test_tasks_evaluated_in_parallel_threads_give_the_same_accuracies(monkeypatch):
    import threading

    import fgrpo.models.evaluation as evaluation
    from fgrpo.data.partitions import test_sets
    from fgrpo.models.lora import fresh_adapter_model

    cfg = load_config(
        None,
        ["model.name=tiny", "data.test_size=48", 'data.tasks=["addition", "sorting", "countdown"]'],
    )
    model, tokenizer = fresh_adapter_model(cfg.model, 0)
    held_out = test_sets(cfg)
    threads: set[int] = set()
    real = evaluation.greedy_completions
    monkeypatch.setattr(
        evaluation,
        "greedy_completions",
        lambda *a, **k: threads.add(threading.get_ident()) or real(*a, **k),
    )
    model.train()
    with torch_threads(1):
        one = evaluation.accuracy_by_task(model, tokenizer, held_out, 32, 16, concurrent_tasks=1)
        assert len(threads) == 1
        threads.clear()
        three = evaluation.accuracy_by_task(model, tokenizer, held_out, 32, 16, concurrent_tasks=3)
    assert len(threads) >= 2 and one == three and 0 < one["macro"] < 1
    assert model.training  # the caller's mode, restored
    threads.clear()
    evaluation.accuracy_by_task(model, tokenizer, held_out, 8, 16, samples=2, concurrent_tasks=3)
    assert len(threads) == 1  # sampled answers share torch's RNG: one task at a time


def test_fgrpo_eval_runs_with_eval_threads(monkeypatch):
    import fgrpo.models.evaluation as evaluation
    from fgrpo.cli.models import evaluate_model

    cfg = load_config(None, ["data.test_size=3", "data.tasks=addition", "eval.threads=1"])
    seen = []
    monkeypatch.setattr(
        evaluation,
        "accuracy_by_task",
        lambda *a, **k: seen.append(torch.get_num_threads()) or {"addition": 1.0, "macro": 1.0},
    )
    with torch_threads(2):
        evaluate_model(cfg, "tiny-random")
        assert torch.get_num_threads() == 2
    assert seen == [1]


def test_centralized_trains_with_one_clients_threads(tmp_path, monkeypatch):
    cfg = load_config(
        None,
        [
            "strategy.name=centralized",
            "data.test_size=3",
            "data.train_size=40",
            "data.tasks=addition",
            "eval.every=0",
            "federation.client_cpus=1",
        ],
    )

    def train_locally(*args, **kwargs):
        raise Stop(torch.get_num_threads())

    monkeypatch.setattr(centralized, "train_locally", train_locally)
    with torch_threads(2), pytest.raises(Stop) as stopped:
        centralized.run_centralized(cfg, tmp_path / "run", lambda line: None)
    assert stopped.value.args == (1,)


def test_eval_threads_must_be_positive():
    with pytest.raises(ConfigError, match="eval.threads"):
        load_config(None, ["eval.threads=0"])


def test_the_cached_client_model_freezes_the_heap_once_loaded():
    lora._cached.cache_clear()
    gc.unfreeze()
    try:
        model, _ = lora.cached_adapter_model(load_config(None, []).model)
        assert gc.get_freeze_count() > 0
        assert not any(
            model is obj for obj in gc.get_objects()
        )  # frozen: out of the collector's generations
    finally:
        gc.unfreeze()
        lora._cached.cache_clear()


def test_trl_gradient_checkpointing_is_off_by_default(tmp_path):
    args = grpo_args(load_config(None, []), str(tmp_path), 0, 1)
    assert args.activation_checkpointing is False and args.gradient_checkpointing is False


def test_vllm_generation_is_one_switch_that_validates_without_vllm(tmp_path):
    cfg = load_config(None, ["grpo.use_vllm=true"])
    check_grpo_settings(cfg)  # the pre-start check does not need vllm or a GPU
    args = grpo_args(cfg, str(tmp_path), 0, 1)
    assert args.use_vllm is True and args.vllm_mode == "colocate"


def test_perf_report_has_a_row_per_measured_number_and_a_column_per_label():
    from fgrpo.analysis.perf_report import markdown

    text = markdown(
        {
            "after": {
                "command": "python benchmarks/perf.py",
                "c": {
                    "ratio": 1.4,
                    "grpo_step_seconds": 0.2,
                    "generate_seconds": 0.14,
                    "breakdown_profiled": {"generation": 0.1, "rest": 0.04},
                },
            },
            "before": {"c": {"ratio": 1.8}},
        }
    )
    assert "| part | measure | before | after |" in text
    assert "| c | GRPO step / plain generate of the same batch (goal <= 1.5) | 1.8 | 1.4 |" in text
    assert "0.100 / 0.040" in text and "| a |" not in text


class OneSweep(threading.Event):
    """A stop event that lets the dispatcher loop run exactly once."""

    def __init__(self) -> None:
        super().__init__()
        self.checks = 0

    def is_set(self) -> bool:
        self.checks += 1
        return self.checks > 1

    def wait(self, timeout=None):  # noqa: ANN001
        return True


class FakeLinkState:
    """The part of Flower's InMemoryLinkState the dispatcher touches; records who was asked."""

    def __init__(self, destinations: list[int]) -> None:
        self.lock = threading.RLock()
        self.message_ins_store = {
            f"m{i}": SimpleNamespace(metadata=SimpleNamespace(dst_node_id=d, delivered_at=""))
            for i, d in enumerate(destinations)
        }
        self.asked: list[int] = []

    def get_message_ins(self, node_id: int, limit: int) -> list:
        self.asked.append(node_id)
        found = [
            m
            for m in self.message_ins_store.values()
            if m.metadata.dst_node_id == node_id and m.metadata.delivered_at == ""
        ][:limit]
        for m in found:
            m.metadata.delivered_at = "now"
        return found


def test_dispatcher_delivers_what_flowers_delivers_asking_only_nodes_with_mail():
    nodes = {node: node for node in range(1000)}  # node id -> partition id
    delivered = {}
    for name, dispatch in (
        ("flower", flower_dispatch.FLOWER_LOOP),
        ("fgrpo", flower_dispatch.add_messages_to_queue),
    ):
        state, queue = FakeLinkState([700, 3, 700, 42]), Queue()
        dispatch(state, queue, nodes, OneSweep())
        delivered[name] = ([m.metadata.dst_node_id for m in queue.queue], state.asked)
    assert (
        delivered["flower"][0] == delivered["fgrpo"][0] == [3, 42, 700]
    )  # one per node per sweep, node order
    assert len(delivered["flower"][1]) == 1000 and delivered["fgrpo"][1] == [3, 42, 700]


def test_the_simulation_runs_with_the_dispatcher_installed(monkeypatch, tmp_path):
    from fgrpo.runtime import runner

    monkeypatch.setattr(
        vce_api, "add_messages_to_queue", vce_api.add_messages_to_queue
    )  # undone after the test
    monkeypatch.setattr("fgrpo.runtime.flower_simulation.simulate", lambda **kwargs: None)
    with pytest.raises(RuntimeError, match="without writing"):
        runner.run_experiment(load_config(None, ["federation.num_clients=2"]), tmp_path)
    assert vce_api.add_messages_to_queue is flower_dispatch.add_messages_to_queue


def counting_evaluations(monkeypatch) -> list[int]:
    calls: list[int] = []
    real = journal.accuracy_by_task

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(journal, "accuracy_by_task", counted)
    return calls


def start_run(tmp_path, name: str, overrides: list[str]) -> journal.RunJournal:
    cfg = load_config(
        None, ["data.test_size=4", "data.tasks=addition", "eval.max_new_tokens=8", *overrides]
    )
    run = journal.RunJournal(cfg, tmp_path / name, lambda line: None)
    run.start(adapter_state(run.model), {})
    return run


def test_round0_evaluation_is_computed_once_for_every_seed_of_a_sweep(tmp_path, monkeypatch):
    calls = counting_evaluations(monkeypatch)
    first = start_run(tmp_path, "a", ["seed=0"])
    second = start_run(tmp_path, "b", ["seed=1"])  # another adapter init: A differs, B = 0
    assert len(calls) == 1 and second.initial_eval == first.initial_eval
    start_run(tmp_path, "c", ["eval.max_new_tokens=9"])  # other settings: evaluated again
    assert len(calls) == 2
    for stored in Path(os.environ["FGRPO_CACHE"]).rglob("*.json"):
        stored.write_text("{not json")  # a damaged cache file is recomputed, not trusted
    assert (
        start_run(tmp_path, "d", ["seed=2"]).initial_eval == first.initial_eval and len(calls) == 3
    )


def test_round0_cache_can_be_switched_off(tmp_path, monkeypatch):
    monkeypatch.setenv("FGRPO_CACHE", "off")
    calls = counting_evaluations(monkeypatch)
    start_run(tmp_path, "a", [])
    start_run(tmp_path, "b", [])
    assert len(calls) == 2


def test_an_adapter_that_is_not_a_no_op_has_no_round0_key(tmp_path):
    run = journal.RunJournal(
        load_config(None, ["data.test_size=2", "data.tasks=addition"]), tmp_path / "r", print
    )
    assert round0.evaluation_key(run.model, run.tokenizer, run.held_out, run.cfg.eval) is not None
    state = adapter_state(run.model)
    load_adapter_state(
        run.model, {k: v + (0.01 if "lora_B" in k else 0.0) for k, v in state.items()}
    )
    assert round0.evaluation_key(run.model, run.tokenizer, run.held_out, run.cfg.eval) is None
