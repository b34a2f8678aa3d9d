"""FGRPO's probe signal: greedy answers on a fixed local probe, scored like TRL sums rewards."""

import pytest

from fgrpo.evaluation import mean_greedy_reward
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

    value = mean_greedy_reward(model, tokenizer, ROWS, [first_two, only_first], max_new_tokens=4)
    assert value == pytest.approx(((2.0 + 0.5) + 1.0) / 2)


def test_probe_with_no_scored_row_is_a_clear_error():
    model, tokenizer = _model()
    with pytest.raises(ValueError, match="no reward function scored"):
        mean_greedy_reward(model, tokenizer, ROWS, [lambda completions, **_: [None] * len(completions)], 4)
