"""The procedural geometry task: figures, answers recomputed from the drawn numbers, reward,
split."""

from __future__ import annotations

import random

import pytest
from PIL import Image

from fgrpo.data import partitions as data
from fgrpo.runtime.configs import load_config
from fgrpo.tasks import get_task
from fgrpo.tasks.geometry import (
    KINDS,
    QUESTIONS,
    TRIPLES,
    circle,
    parallel,
    right_triangle,
    triangle,
)
from fgrpo.tasks.split import share_of

GEOMETRY = get_task("geometry")


def expected_answer(key: str) -> str:
    """The answer a figure's numbers imply, worked out independently of the generator."""
    kind, *values = key.split()
    if kind == "triangle":
        return str(180 - int(values[0]) - int(values[1]))
    if kind == "parallel":
        return values[1]  # checked against the shown angle in the parallel test
    if kind == "right":
        x, y, answer = map(int, values)
        assert answer * answer in (x * x + y * y, y * y - x * x)  # hypotenuse, or the missing leg
        return str(answer)
    radius, asked = int(values[1]), values[2]
    return {
        "radius": str(radius),
        "diameter": str(2 * radius),
        "circumference": f"{2 * radius}\\pi",
    }[asked]


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.__name__)
def test_every_kind_answers_what_its_numbers_imply(kind) -> None:
    for i in range(200):
        figure = kind(random.Random(i), 1)
        assert figure.answer == expected_answer(figure.key), figure.key
        assert figure.question in QUESTIONS.values()
        assert not any(
            ch.isdigit() for ch in figure.question
        )  # the numbers are only in the picture


def test_parallel_angles_are_equal_or_supplementary() -> None:
    for i in range(200):
        _, shown, asked = parallel(random.Random(i), 1).key.split()
        assert int(asked) in (int(shown), 180 - int(shown)) and 25 <= int(shown) <= 155


def test_triangle_angles_are_positive_and_right_sides_are_a_triple() -> None:
    for i in range(200):
        _, a, b = triangle(random.Random(i), 1).key.split()
        assert int(a) >= 20 and int(b) >= 20 and 180 - int(a) - int(b) >= 20
    triples = {tuple(sorted(k * v for v in t)) for t in TRIPLES for k in range(1, 7)}
    for i in range(200):
        sides = tuple(sorted(map(int, right_triangle(random.Random(i), 1).key.split()[1:])))
        assert sides in triples


def test_rows_carry_an_image_and_a_text_prompt_trl_can_fill() -> None:
    from trl.data_utils import prepare_multimodal_messages

    row = GEOMETRY.generate(1, seed=0)[0]
    assert isinstance(row["image"], Image.Image) and row["image"].size == (224, 224)
    assert (
        isinstance(row["prompt"][0]["content"], str) and "<answer>" in row["prompt"][0]["content"]
    )
    filled = prepare_multimodal_messages(
        row["prompt"], images=[row["image"]]
    )  # what GRPOTrainer does
    assert filled[0]["content"][0] == {"type": "image", "image": row["image"]}


def test_figures_are_deterministic_and_drawn() -> None:
    first, again = GEOMETRY.generate(10, seed=5), GEOMETRY.generate(10, seed=5)
    assert [r["image"].tobytes() for r in first] == [r["image"].tobytes() for r in again]
    assert first != GEOMETRY.generate(10, seed=6)
    for row in first:  # ink on paper: the label and the lines
        colours = row["image"].convert("L").getcolors()
        assert len(colours) > 2 and min(c for _, c in colours) < 64


def test_drawn_numbers_change_the_picture() -> None:
    a, b = circle(random.Random(0), 1), circle(random.Random(1), 1)
    assert a.key != b.key and a.image().tobytes() != b.image().tobytes()


def test_reward_is_math_verify() -> None:
    assert GEOMETRY.score("<answer>70</answer>", "70") == 1.0
    assert GEOMETRY.score("so the angle is 70°", "70") == 1.0
    assert GEOMETRY.score("<answer>14\\pi</answer>", "14\\pi") == 1.0
    assert GEOMETRY.score("<answer>14π</answer>", "14\\pi") == 1.0
    assert GEOMETRY.score("\\boxed{14\\pi}", "14\\pi") == 1.0
    assert GEOMETRY.score("<answer>14</answer>", "14\\pi") == 0.0
    assert GEOMETRY.score("<answer>71</answer>", "70") == 0.0


def test_split_is_by_the_figures_numbers_and_disjoint() -> None:
    cfg = load_config(None, ['data.tasks=["geometry"]', "data.train_size=300", "data.test_size=60"])
    rng = random.Random(0)
    keys = {GEOMETRY.figure(rng, 1).key for _ in range(30_000)}
    assert len(keys) > 3000  # a large problem space (~4,000 at difficulty 1)
    test_keys = {k for k in keys if share_of(k) == "test"}
    assert 0.1 < len(test_keys) / len(keys) < 0.3
    held_out = data.test_sets(cfg)["geometry"]
    pool = data.training_pool(cfg)
    assert len(held_out) == 60 and len(pool) == 300
    # the same numbers never appear on both sides, whatever the seed drew
    assert {share_of(r["figure"]) for r in held_out} == {"test"}
    assert set(map(share_of, pool["figure"])) == {"train"}
    assert len({r["figure"] for r in held_out}) == 60  # distinct problems, not redrawn ones
    assert all(isinstance(img, Image.Image) for img in pool["image"][:5])
