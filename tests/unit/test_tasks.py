"""Procedural tasks: determinism, extraction edge cases, rewards on gold and wrong answers."""

from __future__ import annotations

import pytest

from fgrpo.cli.data import tasks_table
from fgrpo.data.partitions import prompt_key, task_test_set
from fgrpo.runtime.configs import load_config
from fgrpo.tasks import TASKS, get_task
from fgrpo.tasks.base import answer_span, boxed_answer, last_integer
from fgrpo.tasks.easy import ASK_FOR_TAG, EASY_TASKS
from fgrpo.tasks.rewards import format_reward, reward_functions, task_reward

ALL = sorted(TASKS)


def wrong_answer(name: str, gold: str) -> str:
    """A completion that is wrong for any gold answer of the task."""
    if name == "sorting":
        return "<answer>" + " ".join("99" for _ in gold.split()) + "</answer>"
    if name == "countdown":
        return "<answer>1000+1000</answer>"
    if name == "geometry":  # angles, lengths and multiples of pi: never negative
        return "<answer>-1</answer>"
    return f"<answer>{int(gold) + 1}</answer>"


@pytest.mark.parametrize("name", ALL)
def test_generator_is_deterministic_and_seeded(name: str) -> None:
    task = get_task(name)
    assert task.generate(20, seed=3) == task.generate(20, seed=3)
    assert task.generate(20, seed=3) != task.generate(20, seed=4)
    assert task.generate(20, seed=3, difficulty=1) != task.generate(20, seed=3, difficulty=3)


@pytest.mark.parametrize("name", ALL)
def test_gold_solution_scores_top_and_wrong_scores_bottom(name: str) -> None:
    task = get_task(name)
    low, high = task.reward_range
    assert low < high
    for difficulty in (1, 2, 3):
        for row in task.generate(15, seed=1, difficulty=difficulty):
            assert task.score(row["solution"], row["answer"]) == high
            assert task.is_correct(row["solution"], row["answer"])
            wrong = wrong_answer(name, row["answer"])
            assert task.score(wrong, row["answer"]) == low
            assert not task.is_correct(wrong, row["answer"])
            assert task.score("", row["answer"]) == low


@pytest.mark.parametrize("name", ALL)
def test_rows_are_trl_prompts(name: str) -> None:
    row = get_task(name).generate(1, seed=0)[0]
    assert (
        row["prompt"][0]["role"] == "user"
        and row["task"] == name
        and isinstance(row["answer"], str)
    )


def test_reward_scales_differ_across_tasks() -> None:
    ranges = {TASKS[n].reward_range for n in ALL}
    assert len(ranges) >= 4  # {0,1}, {0,10}, [0,5], {-1,1}


# --- extraction edge cases -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The answer is 12.", 12),  # extra text, sentence full stop
        ("3 + 4 = 7, then 7 + 5 = 12", 12),  # several numbers: the last one
        ("<answer>12</answer> although 13 is close", 12),  # the tag wins over later numbers
        ("<answer>5</answer> no wait <answer>-8</answer>", -8),  # the last tag wins
        ("it is -5", -5),  # negative
        ("x = −7", -7),  # unicode minus
        ("10-3", 3),  # subtraction, not a sign
        ("so 12 - 15 = -3", -3),
        (r"the result is \boxed{12}.", 12),  # LaTeX boxed
        (r"\boxed{-12} and then 99", -12),  # boxed beats a later number
        (r"$12$", 12),  # inline LaTeX
        (r"$$ x = 1{,}0 $$ hmm $-4$", -4),
        ("about 1,000 apples", 1000),  # thousands separator
        ("12.0", 12),
        ("12.5", None),  # not an integer
        ("#### 42", 42),  # GSM8K marker
        ("no digits here", None),
        ("", None),
        ("version v2", None),  # digits glued to a word are not an answer
    ],
)
def test_integer_extraction(text: str, expected: int | None) -> None:
    assert get_task("addition").extract(text) == expected


def test_boxed_handles_nested_braces_and_unclosed_boxes() -> None:
    assert boxed_answer(r"\boxed{\frac{1}{2}}") == r"\frac{1}{2}"
    assert boxed_answer(r"\boxed{1} then \boxed{2") == "1"
    assert boxed_answer("nothing") is None
    assert answer_span("<answer> 7 </answer> \\boxed{8}") == "7"
    assert last_integer("1,2") == 2


def test_integer_tasks_on_several_formats() -> None:
    add = get_task("addition")
    assert add.score("12+30=42. The answer is 42", "42") == 1.0
    assert add.score(r"I get \boxed{42}", "42") == 1.0
    assert add.score("42 is wrong, the answer is 41", "42") == 0.0
    mul = get_task("multiplication")
    assert mul.score("$-18$", "-18") == 10.0 and mul.score("18", "-18") == 0.0
    mod = get_task("modular")
    assert mod.score("17 mod 5 = 2", "2") == 1.0


def test_sorting_partial_credit_and_formats() -> None:
    sort = get_task("sorting")
    assert sort.score("<answer>[1, 2, 3, 4]</answer>", "1 2 3 4") == 5.0
    assert sort.score(r"\boxed{1,2,3,4}", "1 2 3 4") == 5.0
    assert sort.score("<answer>1 2 4 3</answer>", "1 2 3 4") == pytest.approx(2.5)
    # padding the list with extra items does not earn full positional credit
    assert sort.score("<answer>1 2 3 4 4 4 4 4</answer>", "1 2 3 4") < 5.0
    assert sort.extract("<answer>-1 0 1</answer>") == [-1, 0, 1]


def test_countdown_checks_value_and_numbers_used() -> None:
    cd = get_task("countdown")
    gold = "13|1 3 4"
    assert cd.score("<answer>3*4+1</answer>", gold) == 1.0
    assert cd.score("<answer>3*4+1 = 13</answer>", gold) == 1.0  # equation form
    assert cd.score(r"\boxed{3 \times 4 + 1}", gold) == 1.0  # LaTeX operator
    assert cd.score("<answer>(1+3)*4-3</answer>", gold) == -1.0  # 3 used twice
    assert cd.score("<answer>13</answer>", gold) == -1.0  # numbers not used
    assert cd.score("13", gold) == -1.0  # no expression at all
    assert cd.extract("<answer>__import__('os')</answer>") is None
    assert cd.extract("<answer>2**99999</answer>") is None


# --- reward functions --------------------------------------------------------------------------


def test_task_reward_scores_each_row_by_its_task_and_scale() -> None:
    reward = task_reward({"multiplication": 100.0})
    out = reward(
        completions=[
            [{"role": "assistant", "content": "<answer>4</answer>"}],
            "<answer>6</answer>",
            "x",
        ],
        answer=["4", "6", "anything"],
        task=["addition", "multiplication", "my-dataset"],
    )
    assert out == [1.0, 1000.0, None]  # a data source's row is left to its own reward functions


def test_format_reward_counts_exactly_one_tag() -> None:
    reward = format_reward(0.5)
    assert reward(
        completions=["<answer>1</answer>", "1", "<answer>1</answer><answer>2</answer>"]
    ) == [0.5, 0.0, 0.0]


def test_reward_functions_follow_config() -> None:
    cfg = load_config(None, ["data.format_reward=0.25", "data.reward_scale.addition=3.0"])
    funcs = reward_functions(cfg)
    assert [f.__name__ for f in funcs] == ["task_reward", "format_reward"]
    assert funcs[0](completions=["<answer>2</answer>"], answer=["2"], task=["addition"]) == [3.0]


def test_tasks_table_lists_every_task_with_its_range() -> None:
    text = tasks_table(load_config(None, ["data.reward_scale.multiplication=100.0"]))
    for name, task in TASKS.items():
        line = next(line for line in text.splitlines() if line.startswith(name + " "))
        low, high = task.reward_range
        assert f"[{low:g}, {high:g}]" in line
    assert "[0, 1000]" in text  # the configured scale shows
    assert "math" in text and "math-verify" in text


def test_tasks_cli(capsys: pytest.CaptureFixture[str]) -> None:
    from fgrpo.cli.main import main

    assert main(["tasks"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in TASKS) and "[-1, 1]" in out and "[0, 10]" in out


def test_unknown_task_is_a_config_error() -> None:
    from fgrpo.core.errors import ConfigError

    with pytest.raises(ConfigError, match="data.tasks"):
        load_config(None, ['data.tasks=["addition", "nope"]'])


# --- easy families for small pretrained instruct models (fgrpo.tasks.easy) ------------------------

EASY = [t.name for t in EASY_TASKS]


def solve_easy(question: str) -> int:
    """The answer, recomputed from the question's words (independently of the generator)."""
    import re

    values = [int(v) for v in re.findall(r"\d+", question.split("?")[0])]
    if "+" in question:
        return values[0] + values[1]
    if " times " in question:
        return values[0] * values[1]
    if "larger" in question:
        return max(values)
    return values[0] + (1 if "after" in question else -1)


@pytest.mark.parametrize("name", EASY)
def test_easy_answers_are_right_and_asked_for_in_the_tag(name: str) -> None:
    for row in get_task(name).generate(300, seed=5):
        question = prompt_key(row)
        assert question.endswith(ASK_FOR_TAG) and "<answer>" in question
        assert int(row["answer"]) == solve_easy(question)
        assert get_task(name).is_correct(f"Sure! <answer>{row['answer']}</answer>", row["answer"])


@pytest.mark.parametrize("name", EASY)
def test_easy_problem_space_holds_two_hundred_held_out_prompts_apart_from_training(
    name: str,
) -> None:
    task = get_task(name)
    space = {prompt_key(r) for r in task.generate(40_000, seed=2)}
    assert (
        len(space) >= 1_500
    )  # small enough to be easy, large enough for a 20% test share of >= 200
    test = {prompt_key(r) for r in task_test_set(name, 250, 1)}
    train = {prompt_key(r) for r in task.generate(800, seed=0, share="train", unique=True)}
    assert len(test) == 250 and len(train) == 800 and not test & train
