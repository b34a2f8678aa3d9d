"""The performance settings of issue 12: torch threads, the frozen heap, TRL's checkpointing, vLLM."""

from __future__ import annotations

import gc
import sys
from pathlib import Path

import pytest
import torch

from fgrpo.client.grpo import grpo_args
from fgrpo.config import ConfigError, load_config
from fgrpo.cpu import torch_threads
from fgrpo.grpo_check import check_grpo_settings
from fgrpo.models import lora
from fgrpo.server import centralized, journal

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


class Stop(Exception):
    pass


def test_torch_threads_sets_the_count_and_restores_it_even_on_error():
    before = torch.get_num_threads()
    with pytest.raises(Stop), torch_threads(1):
        assert torch.get_num_threads() == 1
        raise Stop
    assert torch.get_num_threads() == before


def test_server_evaluation_runs_with_eval_threads(tmp_path, monkeypatch):
    cfg = load_config(None, ["data.test_size=3", "data.tasks=addition", "eval.threads=1"])
    seen = []
    monkeypatch.setattr(journal, "accuracy_by_task", lambda *a, **k: seen.append(torch.get_num_threads()) or {"addition": 1.0, "macro": 1.0})
    run = journal.RunJournal(cfg, tmp_path / "run", print)
    with torch_threads(2):
        run.evaluate()
        assert torch.get_num_threads() == 2  # restored for whatever the server does next
    assert seen == [1]


def test_centralized_trains_with_one_clients_threads(tmp_path, monkeypatch):
    cfg = load_config(None, ["strategy.name=centralized", "data.test_size=3", "data.train_size=40",
                             "data.tasks=addition", "eval.every=0", "federation.client_cpus=1"])

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
        assert not any(model is obj for obj in gc.get_objects())  # frozen: out of the collector's generations
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
    sys.path.insert(0, str(BENCHMARKS))
    try:
        from perf_report import markdown
    finally:
        sys.path.remove(str(BENCHMARKS))
    text = markdown({"after": {"command": "python benchmarks/perf.py", "c": {"ratio": 1.4, "grpo_step_seconds": 0.2,
                     "generate_seconds": 0.14, "breakdown_profiled": {"generation": 0.1, "rest": 0.04}}},
                     "before": {"c": {"ratio": 1.8}}})
    assert "| part | measure | before | after |" in text
    assert "| c | GRPO step / plain generate of the same batch (goal <= 1.5) | 1.8 | 1.4 |" in text
    assert "0.100 / 0.040" in text and "| a |" not in text
