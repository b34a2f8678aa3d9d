"""FGRPO's probe signal: greedy answers on a fixed local probe, scored like TRL sums rewards, per
task."""

import pytest
import torch
from datasets import Dataset

from fgrpo.client.signal import probe_signals
from fgrpo.models.evaluation import completion_rewards
from fgrpo.models.registry import load_base
from fgrpo.tasks import get_task

ROWS = get_task("addition").generate(3, seed=0)


def _model():
    return load_base("tiny-random")


def test_probe_sums_reward_functions_and_skips_rows_nobody_scored():
    model, tokenizer = _model()

    def first_two(completions, answer, **_):
        return [2.0, 1.0, None]

    def only_first(completions, **_):
        return [0.5, None, None]

    totals = completion_rewards(model, tokenizer, ROWS, [first_two, only_first], max_new_tokens=4)
    assert totals == [2.5, 1.0, None]
    # grpo.reward_weights [2, 0.5], as TRL trains on them: 2·2 + 0.5·0.5, 2·1, nobody
    weighted = completion_rewards(
        model, tokenizer, ROWS, [first_two, only_first], max_new_tokens=4, weights=[2.0, 0.5]
    )
    assert weighted == [4.25, 2.0, None]


def test_probe_signal_is_the_mean_total_per_task():
    model, tokenizer = _model()
    rows = Dataset.from_list(ROWS + get_task("sorting").generate(2, seed=0))

    def by_position(completions, **_):
        return [1.0, 2.0, 3.0, 10.0, None]

    assert probe_signals(model, tokenizer, rows, [by_position], 4) == {
        "addition": (2.0, 3),
        "sorting": (10.0, 1),
    }


def test_probe_with_no_scored_row_is_a_clear_error():
    model, tokenizer = _model()
    with pytest.raises(ValueError, match="no reward function scored"):
        probe_signals(
            model,
            tokenizer,
            Dataset.from_list(ROWS),
            [lambda completions, **_: [None] * len(completions)],
            4,
        )


def test_sampled_probe_reuses_its_random_numbers_and_leaves_the_training_rng_alone():
    """probe_samples: k answers per row drawn with the probe's own seed, so an unchanged model
    scores exactly the same (delta 0) and a changed one differs only where the change moves a
    draw."""
    from fgrpo.client.signal import ProbeSampling
    from fgrpo.tasks.rewards import task_reward

    model, tokenizer = load_base("tiny")
    rows = Dataset.from_list(get_task("addition").generate(6, seed=1))
    sampling = ProbeSampling(samples=4, temperature=1.0, seed=3)
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    first = probe_signals(model, tokenizer, rows, [task_reward()], 16, sampling)
    assert torch.equal(torch.rand(1), expected_next)  # the caller's RNG stream is untouched
    assert first["addition"][1] == 6 * 4  # every sampled answer is a rollout of the signal
    assert probe_signals(model, tokenizer, rows, [task_reward()], 16, sampling) == first
    other_seed = [
        probe_signals(model, tokenizer, rows, [task_reward()], 16, ProbeSampling(4, 1.0, s))
        for s in range(4, 8)
    ]
    assert any(o != first for o in other_seed)  # it does sample: another seed draws other answers


def test_probe_hands_chat_completions_for_chat_prompts_as_trl_does():
    """TRL's own reward functions read `completion[0]["content"]` (trl.rewards.accuracy_reward)."""
    from trl.rewards import accuracy_reward

    model, tokenizer = _model()
    seen = []

    def recording(completions, **_):
        seen.extend(completions)
        return [0.0] * len(completions)

    solution = [r["answer"] for r in ROWS]
    assert completion_rewards(model, tokenizer, ROWS, [recording], max_new_tokens=4) == [0.0] * 3
    assert all(c[0]["role"] == "assistant" and isinstance(c[0]["content"], str) for c in seen)
    assert (
        completion_rewards(
            model,
            tokenizer,
            [r | {"solution": s} for r, s in zip(ROWS, solution, strict=False)],
            [accuracy_reward],
            max_new_tokens=4,
        )
        == [0.0] * 3
    )  # random weights: wrong, not a crash
