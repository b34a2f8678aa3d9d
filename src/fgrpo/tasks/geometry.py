"""Geometry with figures: a PIL-drawn diagram and a question whose numbers are only in the picture.

Four kinds of figure, one drawn at random per problem:

- ``triangle``: two angles marked, find the third (180 minus the two);
- ``parallel``: two parallel lines cut by a transversal, one angle marked at one crossing,
  find the angle marked ``?`` at the other (equal, or its supplement);
- ``right``: a right triangle with two sides labelled, find the third (Pythagorean triples);
- ``circle``: a labelled radius or diameter, find the radius, diameter or circumference (in π).

The prompt's text is the same for every figure of a kind, so a model must read the image.
A problem's identity (its place in the fixed train/test split, and what ``unique`` compares)
is its mathematical content (the figure's numbers), not where and how it was drawn.
Answers are scored with math-verify (``14\\pi`` equals ``14π``).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from fgrpo.tasks.math_datasets import MathAnswer

SIZE = 224  # pixels; square figures
MARGIN = 30
INK, PAPER = "black", "white"
Point = tuple[float, float]

ANSWER_FORMAT = " Give the number only, in <answer></answer> tags."
QUESTIONS = {
    "triangle": "The figure shows a triangle with two of its angles marked in degrees. "
    "How many degrees is the angle marked '?'?",
    "parallel": "The figure shows two parallel lines (marked >) cut by a third line. "
    "How many degrees is the angle marked '?'?",
    "right": "The figure shows a right triangle with two side lengths marked. How long is the side marked '?'?",
    "radius": "What is the radius of the circle in the figure?",
    "diameter": "What is the diameter of the circle in the figure?",
    "circumference": "What is the circumference of the circle in the figure? Give it as a multiple of pi.",
}
TRIPLES = ((3, 4, 5), (5, 12, 13), (8, 15, 17), (7, 24, 25), (20, 21, 29), (9, 40, 41))


@dataclass(frozen=True)
class Figure:
    """One drawn problem: ``key`` is its mathematical identity, ``question`` names what to find."""

    key: str
    question: str
    answer: str
    draw: Callable[[ImageDraw.ImageDraw], None]

    def image(self) -> Image.Image:
        canvas = Image.new("RGB", (SIZE, SIZE), PAPER)
        self.draw(ImageDraw.Draw(canvas))
        return canvas


@cache
def _font() -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=15)


def _fit(points: list[Point], rng: random.Random) -> list[Point]:
    """Rotate the figure at random, then scale and centre it in the canvas (y pointing down)."""
    turn = rng.uniform(0, 2 * math.pi)
    c, s = math.cos(turn), math.sin(turn)
    turned = [(x * c - y * s, x * s + y * c) for x, y in points]
    xs, ys = [p[0] for p in turned], [p[1] for p in turned]
    scale = (SIZE - 2 * MARGIN) / max(max(xs) - min(xs), max(ys) - min(ys))
    mid_x, mid_y = (max(xs) + min(xs)) / 2, (max(ys) + min(ys)) / 2
    return [(SIZE / 2 + (x - mid_x) * scale, SIZE / 2 - (y - mid_y) * scale) for x, y in turned]


def _toward(point: Point, target: Point, distance: float) -> Point:
    dx, dy = target[0] - point[0], target[1] - point[1]
    norm = math.hypot(dx, dy) or 1.0
    return point[0] + dx / norm * distance, point[1] + dy / norm * distance


def _label(draw: ImageDraw.ImageDraw, at: Point, text: str) -> None:
    draw.text(at, text, fill=INK, font=_font(), anchor="mm")


def _polygon(draw: ImageDraw.ImageDraw, points: list[Point]) -> None:
    draw.line([*points, points[0]], fill=INK, width=2)


def _centroid(points: list[Point]) -> Point:
    return sum(p[0] for p in points) / len(points), sum(p[1] for p in points) / len(points)


def triangle(rng: random.Random, difficulty: int) -> Figure:
    """Angles of at least 20° so every vertex has room for its label."""
    first = rng.randint(20, 140)
    second = rng.randint(20, 160 - first)
    angles = [first, second, 180 - first - second]
    rng.shuffle(angles)  # the last one is asked for
    a, b = (math.radians(v) for v in angles[:2])
    side = math.sin(b) / math.sin(math.pi - a - b)  # law of sines: |AC| when |AB| = 1
    corners = _fit([(0.0, 0.0), (1.0, 0.0), (side * math.cos(a), side * math.sin(a))], rng)
    labels = [f"{angles[0]}°", f"{angles[1]}°", "?"]

    def draw(d: ImageDraw.ImageDraw) -> None:
        _polygon(d, corners)
        middle = _centroid(corners)
        for corner, text in zip(corners, labels, strict=True):
            _label(d, _toward(corner, middle, 24), text)

    low, high = sorted(angles[:2])
    return Figure(f"triangle {low} {high}", QUESTIONS["triangle"], str(angles[2]), draw)


def parallel(rng: random.Random, difficulty: int) -> Figure:
    """Lines y = ±1, a transversal through the origin at angle θ; at each crossing the four
    angles are θ (upper right, lower left) and 180 − θ (upper left, lower right)."""
    theta = rng.randint(25, 155)
    run = 1 / math.tan(math.radians(theta))
    ends = [
        (-3.3, 1.0),
        (3.3, 1.0),
        (-3.3, -1.0),
        (3.3, -1.0),
        (run * 1.6, 1.6),
        (-run * 1.6, -1.6),
    ]
    chevrons = [
        (x, y + dy) for y in (1.0, -1.0) for x, dy in ((-3.0, 0.15), (-2.8, 0.0), (-3.0, -0.15))
    ]
    crossings = [(run, 1.0), (-run, -1.0)]
    # sector -> (direction of its bisector, its angle)
    sectors = [
        (theta / 2, theta),
        ((theta + 180) / 2, 180 - theta),
        (theta / 2 + 180, theta),
        ((theta + 180) / 2 + 180, 180 - theta),
    ]
    shown, asked = rng.choice(sectors), rng.choice(sectors)
    if rng.random() < 0.5:
        crossings.reverse()
    marks = []
    for (x, y), (direction, angle) in zip(crossings, (shown, asked), strict=True):
        reach = 0.75 / max(math.sin(math.radians(angle / 2)), 0.45)
        marks.append(
            (
                x + reach * math.cos(math.radians(direction)),
                y + reach * math.sin(math.radians(direction)),
            )
        )
    points = _fit(ends + chevrons + marks, rng)

    def draw(d: ImageDraw.ImageDraw) -> None:
        for start, end in ((0, 1), (2, 3), (4, 5)):
            d.line([points[start], points[end]], fill=INK, width=2)
        d.line(points[6:9], fill=INK, width=1)
        d.line(points[9:12], fill=INK, width=1)
        _label(d, points[12], f"{shown[1]}°")
        _label(d, points[13], "?")

    return Figure(f"parallel {shown[1]} {asked[1]}", QUESTIONS["parallel"], str(asked[1]), draw)


def right_triangle(rng: random.Random, difficulty: int) -> Figure:
    """Legs along the axes; side lengths are a scaled Pythagorean triple."""
    k = rng.randint(1, 3 * (difficulty + 1))
    a, b, c = (k * v for v in rng.choice(TRIPLES))
    if rng.random() < 0.5:
        a, b = b, a
    unknown = rng.randrange(3)
    corners = _fit([(0.0, 0.0), (float(a), 0.0), (0.0, float(b))], rng)
    sides = [(corners[0], corners[1]), (corners[0], corners[2]), (corners[1], corners[2])]
    texts = [str(v) if i != unknown else "?" for i, v in enumerate((a, b, c))]

    def draw(d: ImageDraw.ImageDraw) -> None:
        _polygon(d, corners)
        right, along_a, along_b = (
            corners[0],
            _toward(corners[0], corners[1], 12),
            _toward(corners[0], corners[2], 12),
        )
        corner = (along_a[0] + along_b[0] - right[0], along_a[1] + along_b[1] - right[1])
        d.line([along_a, corner, along_b], fill=INK, width=1)  # the right-angle mark
        middle = _centroid(corners)
        for (p, q), text in zip(sides, texts, strict=True):
            halfway = ((p[0] + q[0]) / 2, (p[1] + q[1]) / 2)
            _label(d, _toward(halfway, middle, -14), text)  # outside the triangle

    answer = (a, b, c)[unknown]
    known = sorted(v for i, v in enumerate((a, b, c)) if i != unknown)
    return Figure(f"right {known[0]} {known[1]} {answer}", QUESTIONS["right"], str(answer), draw)


def circle(rng: random.Random, difficulty: int) -> Figure:
    """A radius or a diameter is drawn and labelled; another measure is asked for."""
    radius = rng.randint(1, 25 * difficulty + 25)
    shows = rng.choice(("radius", "diameter"))
    asked = rng.choice(("diameter" if shows == "radius" else "radius", "circumference"))
    answer = {
        "radius": str(radius),
        "diameter": str(2 * radius),
        "circumference": f"{2 * radius}\\pi",
    }[asked]
    start = (0.0, 0.0) if shows == "radius" else (-1.0, 0.0)
    # centre, the drawn segment's ends, its label, and the circle's extremes (which square the fit)
    points = _fit(
        [(0.0, 0.0), start, (1.0, 0.0), (0.5, 0.25), (-1.0, 0.0), (0.0, 1.0), (0.0, -1.0)], rng
    )
    centre, a, b, label_at = points[:4]
    r = math.dist(centre, points[4])
    text = f"r = {radius}" if shows == "radius" else f"d = {2 * radius}"

    def draw(d: ImageDraw.ImageDraw) -> None:
        d.ellipse(
            [centre[0] - r, centre[1] - r, centre[0] + r, centre[1] + r], outline=INK, width=2
        )
        d.line([a, b], fill=INK, width=2)
        d.ellipse([centre[0] - 2, centre[1] - 2, centre[0] + 2, centre[1] + 2], fill=INK)
        _label(d, label_at, text)

    return Figure(f"circle {shows} {radius} {asked}", QUESTIONS[asked], answer, draw)


KINDS = (triangle, parallel, right_triangle, circle)


class Geometry(MathAnswer):
    """Read the figure, answer one number; 1 right (math-verify), 0 wrong."""

    name = "geometry"
    description = (
        "a drawn figure (triangle angles, parallel lines, right-triangle sides, circle measures), "
        "numbers only in the image; math-verify match"
    )
    reward_range = (0.0, 1.0)
    needs_images = True

    def figure(self, rng: random.Random, difficulty: int) -> Figure:
        return rng.choice(KINDS)(rng, difficulty)

    def make_problem(self, rng: random.Random, difficulty: int) -> tuple[str, str, str]:
        """(the figure's identity, gold answer, gold completion)."""
        found = self.figure(rng, difficulty)
        return found.key, found.answer, f"<answer>{found.answer}</answer>"

    def make_row(self, rng: random.Random, difficulty: int) -> tuple[str, dict[str, Any]]:
        found = self.figure(rng, difficulty)
        return found.key, {
            "prompt": [{"role": "user", "content": found.question + ANSWER_FORMAT}],
            "image": found.image(),
            "answer": found.answer,
            "solution": f"<answer>{found.answer}</answer>",
            "task": self.name,
            "figure": found.key,  # what was drawn, for inspection; the prompt does not show it
        }
