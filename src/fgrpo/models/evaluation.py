"""Held-out accuracy: greedy accuracy per task and macro, binomial standard errors, pass@k."""

from __future__ import annotations

import math
import threading
from concurrent.futures import ThreadPoolExecutor
from statistics import fmean
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase, ProcessorMixin

from fgrpo.models.source import text_tokenizer
from fgrpo.tasks import checker_for
from fgrpo.tasks.rewards import weighted_total

# Tokenizers and processors keep per-call padding state (a Rust tokenizer refuses concurrent use),
# so tasks generating in parallel threads take turns at encoding and decoding.
_PROCESSING = threading.Lock()


def _encoded(
    processing_class: Any, prompts: list[list[dict[str, Any]]], images: list[Any]
) -> dict[str, Any]:
    """A left-padded batch; a vision-language processor also turns each row's image into pixels,
    placed as TRL's GRPOTrainer places it (before the first user message's text)."""
    if isinstance(processing_class, ProcessorMixin):
        # deferred: TRL takes seconds to import; only image prompts need it
        from trl.data_utils import prepare_multimodal_messages

        conversations = [
            prepare_multimodal_messages(p, images=[] if i is None else [i])
            for p, i in zip(prompts, images, strict=True)
        ]
        return processing_class.apply_chat_template(
            conversations,
            add_generation_prompt=True,
            tokenize=True,
            return_dict=True,
            return_tensors="pt",
            processor_kwargs={"padding": True, "padding_side": "left"},
        )
    texts = [
        processing_class.apply_chat_template(p, tokenize=False, add_generation_prompt=True)
        for p in prompts
    ]
    return processing_class(
        texts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False
    )


@torch.no_grad()
def greedy_completions(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase | ProcessorMixin,
    prompts: list[list[dict[str, Any]]],
    max_new_tokens: int,
    batch_size: int = 64,
    samples: int = 0,
    temperature: float = 1.0,
    images: list[Any] | None = None,
) -> list[str]:
    """Chat-formatted prompts in, decoded completions out (left padding, batched).

    ``samples`` > 0 samples that many completions per prompt at ``temperature`` instead
    of decoding greedily (prompt-major order); a batch then holds batch_size completions.
    ``images`` holds each prompt's image (None: none) for a vision-language model's processor.
    """
    was_training = model.training
    model.eval()
    text = text_tokenizer(tokenizer)
    images = images or [None] * len(prompts)
    sampling = (
        {
            "do_sample": True,
            "temperature": temperature,
            "top_k": 0,
            "top_p": 1.0,
            "num_return_sequences": samples,
        }
        if samples
        else {"do_sample": False}
    )
    per_batch = max(1, batch_size // samples) if samples else batch_size
    outputs: list[str] = []
    for start in range(0, len(prompts), per_batch):
        batch = slice(start, start + per_batch)
        with _PROCESSING:
            encoded = _encoded(tokenizer, prompts[batch], images[batch]).to(model.device)
        generated = model.generate(
            **encoded, max_new_tokens=max_new_tokens, pad_token_id=text.pad_token_id, **sampling
        )
        new_tokens = generated[:, encoded["input_ids"].shape[1] :]
        with _PROCESSING:
            outputs.extend(text.batch_decode(new_tokens, skip_special_tokens=True))
    model.train(was_training)
    return outputs


def binomial_se(accuracy: float, n: int) -> float:
    return math.sqrt(accuracy * (1.0 - accuracy) / n) if n else 0.0


def standard_errors(accuracy: dict[str, float], sizes: dict[str, int]) -> dict[str, float]:
    """Binomial standard error per task and of the macro average (independent tasks)."""
    se = {t: binomial_se(accuracy[t], sizes[t]) for t in sizes}
    se["macro"] = math.sqrt(sum(v * v for v in se.values())) / len(se) if se else 0.0
    return se


def accuracy_by_task(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    test_sets: dict[str, list[dict[str, Any]]],
    max_new_tokens: int,
    batch_size: int = 64,
    samples: int = 0,
    temperature: float = 1.0,
    concurrent_tasks: int = 1,
) -> dict[str, float]:
    """Fraction of exactly-correct greedy answers per task, plus ``macro`` over tasks; with
    ``samples`` = k > 0, the fraction of prompts with a correct answer among k samples (pass@k).

    ``concurrent_tasks`` > 1 generates that many tasks' greedy answers at once, in threads (torch
    runs its ops outside the GIL; the batches, hence the answers, are the same as one task at a
    time); sampled answers (pass@k) stay one task at a time, as they share torch's RNG.
    Scoring stays in the calling thread: math-verify's timeouts use signals, main thread only."""
    per_prompt = max(1, samples)

    def answers(rows: list[dict[str, Any]]) -> list[str]:
        return greedy_completions(
            model,
            tokenizer,
            [r["prompt"] for r in rows],
            max_new_tokens,
            batch_size,
            samples,
            temperature,
            images=[r.get("image") for r in rows],
        )

    workers = (
        1 if samples else max(1, concurrent_tasks)
    )  # sampling draws from torch's one global RNG
    was_training = model.training
    model.eval()  # once, for every thread (each greedy_completions then restores eval mode)
    try:
        with ThreadPoolExecutor(workers) as pool:
            generated = dict(zip(test_sets, pool.map(answers, test_sets.values()), strict=True))
    finally:
        model.train(was_training)
    result: dict[str, float] = {}
    for name, rows in test_sets.items():
        task = checker_for(name, rows)  # a procedural task, or a data source's gold check
        completions = generated[name]
        result[name] = fmean(
            any(
                task.is_correct(c, r["answer"])
                for c in completions[i * per_prompt : (i + 1) * per_prompt]
            )
            for i, r in enumerate(rows)
        )
    result["macro"] = fmean(result.values()) if result else 0.0
    return result


def pass_at_k(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    test_sets: dict[str, list[dict[str, Any]]],
    k: int,
    max_new_tokens: int,
    temperature: float = 1.0,
) -> dict[str, float]:
    """pass@k per task and macro: the ceiling RL from verifiable rewards pulls greedy accuracy
    towards."""
    return accuracy_by_task(
        model, tokenizer, test_sets, max_new_tokens, 512, samples=k, temperature=temperature
    )


def completion_rewards(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    rows: list[dict[str, Any]],
    reward_funcs: list[Any],
    max_new_tokens: int,
    samples: int = 0,
    temperature: float = 1.0,
    batch_size: int = 64,
    weights: list[float] | None = None,
) -> list[float | None]:
    """Total reward of the greedy answer to each row, or of ``samples`` sampled answers per row
    (prompt-major) — FGRPO's ``probe`` signal.

    As in TRL, a row's total is the ``weights``-weighted sum (``grpo.reward_weights``; 1 each by
    default) of the reward functions that scored it (None means "not mine"); a row no function
    scored gets None.
    """
    per_prompt = max(1, samples)
    completions: list[Any] = greedy_completions(
        model,
        tokenizer,
        [r["prompt"] for r in rows],
        max_new_tokens,
        batch_size,
        samples,
        temperature,
        images=[r.get("image") for r in rows],
    )
    if isinstance(
        rows[0]["prompt"], list
    ):  # chat prompts: TRL hands over chat completions (trl.rewards index them)
        completions = [[{"role": "assistant", "content": text}] for text in completions]
    repeated = [r for r in rows for _ in range(per_prompt)]
    columns = {k: [r[k] for r in repeated] for k in rows[0] if k != "prompt"}
    scores = [
        fn(completions=completions, prompts=[r["prompt"] for r in repeated], **columns)
        for fn in reward_funcs
    ]
    return [
        weighted_total(per_row, weights or [1.0] * len(reward_funcs))
        for per_row in zip(*scores, strict=True)
    ]
