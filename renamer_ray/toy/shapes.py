"""Synthetic "coloured shape" images: the task the shipped `toy-shapes` checkpoint is trained on.

Each image is one filled shape (circle, square or triangle) in one of four colours on a varied
background (flat, gradient or noisy, never in a shape colour), at a random size, position and
aspect ratio. Its correct name is ``<colour>-<shape>``, e.g. ``blue-triangle``. Used by the
training script, by the tests (freshly drawn images) and to make the bundled sample folder.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFilter

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 170, 50),
    "blue": (30, 70, 220),
    "yellow": (240, 210, 20),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
LABELS: tuple[str, ...] = tuple(f"{c}-{s}" for c in COLOURS for s in SHAPES)


@dataclass(frozen=True)
class ShapeSample:
    image: Image.Image
    colour: str
    shape: str

    @property
    def label(self) -> str:
        return f"{self.colour}-{self.shape}"


def _jitter(rgb: tuple[int, int, int], rng: random.Random, amount: int) -> tuple[int, int, int]:
    return tuple(max(0, min(255, v + rng.randint(-amount, amount))) for v in rgb)  # type: ignore[return-value]


def _background_colour(rng: random.Random) -> tuple[int, int, int]:
    """A low-saturation colour (greys, off-whites, dark or pastel tints): never a shape colour."""
    base = rng.choice([rng.randint(0, 60), rng.randint(90, 170), rng.randint(200, 255)])
    tint = 25 if base > 60 else 12
    return tuple(max(0, min(255, base + rng.randint(-tint, tint))) for _ in range(3))  # type: ignore[return-value]


def _background(size: tuple[int, int], rng: random.Random) -> Image.Image:
    w, h = size
    kind = rng.choice(["flat", "gradient", "noise"])
    if kind == "flat":
        return Image.new("RGB", size, _background_colour(rng))
    if kind == "gradient":
        a, b = _background_colour(rng), _background_colour(rng)
        ramp = Image.linear_gradient("L").resize((w, h))
        if rng.random() < 0.5:
            ramp = ramp.transpose(Image.Transpose.ROTATE_90).resize((w, h))
        return Image.composite(Image.new("RGB", size, a), Image.new("RGB", size, b), ramp)
    noise = Image.effect_noise((max(1, w // 4), max(1, h // 4)), rng.randint(10, 40))
    noise = noise.resize((w, h), Image.Resampling.BILINEAR)
    colour = Image.new("RGB", size, _background_colour(rng))
    return Image.blend(colour, Image.merge("RGB", (noise, noise, noise)), 0.35)


def draw_shape(rng: random.Random, *, min_side: int = 96, max_side: int = 1400) -> ShapeSample:
    """One random image; sizes from ``min_side`` to ``max_side`` px, aspect ratio 1:2 to 2:1."""
    colour = rng.choice(list(COLOURS))
    shape = rng.choice(SHAPES)
    long_side = rng.randint(min_side, max_side)
    ratio = math.exp(rng.uniform(math.log(0.5), math.log(2.0)))
    w, h = (long_side, max(min_side // 2, int(long_side / ratio))) if ratio >= 1 else (
        max(min_side // 2, int(long_side * ratio)), long_side)
    image = _background((w, h), rng)

    side = min(w, h)
    extent = rng.uniform(0.6, 0.9) * side  # the shape's bounding box
    cx = rng.uniform(extent / 2, w - extent / 2)
    cy = rng.uniform(extent / 2, h - extent / 2)
    r = extent / 2
    angle = rng.uniform(-math.pi / 36, math.pi / 36)
    if shape == "circle":
        points = None
    else:
        corners = 4 if shape == "square" else 3
        start = angle + (math.pi / 4 if corners == 4 else -math.pi / 2)
        points = [(cx + r * math.cos(start + k * 2 * math.pi / corners),
                   cy + r * math.sin(start + k * 2 * math.pi / corners)) for k in range(corners)]

    # Draw at 2x on a mask and downsample, so edges are smooth like a photo's.
    mask = Image.new("L", (w * 2, h * 2), 0)
    pen = ImageDraw.Draw(mask)
    if points is None:
        pen.ellipse([2 * (cx - r), 2 * (cy - r), 2 * (cx + r), 2 * (cy + r)], fill=255)
    else:
        pen.polygon([(2 * x, 2 * y) for x, y in points], fill=255)
    mask = mask.resize((w, h), Image.Resampling.BOX)
    fill = Image.new("RGB", (w, h), _jitter(COLOURS[colour], rng, 25))
    image.paste(fill, (0, 0), mask)
    if rng.random() < 0.3:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.5)))
    return ShapeSample(image=image, colour=colour, shape=shape)
