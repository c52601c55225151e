"""Synthetic "coloured shape" images: the task the shipped `toy-shapes` checkpoint is trained on.

Each image is one filled shape (circle, square or triangle) in one of four colours on a varied
background (flat, gradient or noisy, never in a shape colour), at a random size, position and
aspect ratio. Its correct name is ``<colour>-<shape>``, e.g. ``blue-triangle``.

- :func:`draw_shape`: the everyday distribution (aspect 1:2 to 2:1, shapes 60–90 % of the short side,
  nearly upright). The tests' freshly drawn images, the benchmarks and the bundled sample folder use it;
  its output for a given seed is kept stable.
- :func:`draw_varied_shape`: a much wider one, what the checkpoint is trained on — aspect 1:3 to 3:1,
  shapes 28–88 % of the short side rotated up to ±22°, slightly irregular, any-angle gradients, fine
  and blotchy noise, dark and vignetted backgrounds, blur scaled to the image, sensor noise.
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


# --------------------------------------------------------------------------- the training distribution


def _muted(rng: random.Random, lo: int = 0, hi: int = 255) -> tuple[int, int, int]:
    """A grey with a faint tint, anywhere from black to white: never a shape colour."""
    base = rng.randint(lo, hi)
    return tuple(max(0, min(255, base + rng.randint(-16, 16))) for _ in range(3))  # type: ignore[return-value]


def _ramp(size: tuple[int, int], rng: random.Random) -> Image.Image:
    """An "L" ramp 0→255 across the image at any angle."""
    w, h = size
    side = 2 * max(w, h)
    ramp = Image.linear_gradient("L").resize((side, side)).rotate(rng.uniform(0, 360), Image.Resampling.BILINEAR)
    left, top = (side - w) // 2, (side - h) // 2
    ramp = ramp.crop((left, top, left + w, top + h))
    lo, hi = ramp.getextrema()
    return ramp.point(lambda v: int((v - lo) * 255 / max(1, hi - lo)))


def _grain(size: tuple[int, int], rng: random.Random, sigma: float, coarse: int) -> Image.Image:
    """Grain of about ``sigma`` levels (``coarse`` > 1: blotches) in an RGB image centred on 128, grey or
    chromatic. Drawn from ``rng`` (not ``Image.effect_noise``, which reads the C library's ``rand()``: its
    output would depend on what else the process drew before, and training draws in worker processes)."""
    w, h = size
    small = (max(1, w // coarse), max(1, h // coarse))
    gain = sigma / 73.9  # the standard deviation of uniform bytes

    def band() -> Image.Image:
        noise = Image.frombytes("L", small, rng.randbytes(small[0] * small[1]))
        return noise.point(lambda v: max(0, min(255, round(128 + (v - 128) * gain))))

    bands = [band() for _ in range(1 if rng.random() < 0.5 else 3)]
    grain = Image.merge("RGB", bands * 3 if len(bands) == 1 else bands)
    return grain.resize(size, Image.Resampling.BICUBIC) if small != size else grain


def _varied_background(size: tuple[int, int], rng: random.Random) -> Image.Image:
    kind = rng.choice(["flat", "gradient", "noise", "dark", "dark", "light"])
    if kind == "flat":
        image = Image.new("RGB", size, _muted(rng))
    elif kind == "light":
        image = Image.new("RGB", size, _muted(rng, 200, 255))
    elif kind == "gradient":
        image = Image.composite(Image.new("RGB", size, _muted(rng)), Image.new("RGB", size, _muted(rng)),
                                _ramp(size, rng))
    elif kind == "dark":
        image = Image.new("RGB", size, _muted(rng, 0, 45))
        if rng.random() < 0.5:
            image = Image.composite(image, Image.new("RGB", size, _muted(rng, 0, 25)), _ramp(size, rng))
    else:
        image = Image.new("RGB", size, _muted(rng, 25, 230))
    if kind == "noise" or rng.random() < 0.15:
        coarse = rng.choice([1, 1, 2, 4, 8])
        grain = _grain(size, rng, rng.uniform(8, 60), coarse)
        image = Image.blend(image, grain, rng.uniform(0.25, 0.6))
        image = Image.blend(image, Image.new("RGB", size, _muted(rng)), rng.uniform(0.0, 0.4))
    return image


def _outline(shape: str, cx: float, cy: float, extent: float, angle: float,
             rng: random.Random) -> list[tuple[float, float]] | None:
    """The polygon for a square or a triangle (None for a circle), roughly ``extent`` across."""
    if shape == "circle":
        return None
    if shape == "square":
        half_w = extent / 2 * rng.uniform(0.93, 1.07)
        half_h = extent / 2 * rng.uniform(0.93, 1.07)
        corners = [(-half_w, -half_h), (half_w, -half_h), (half_w, half_h), (-half_w, half_h)]
    else:
        side = extent * rng.uniform(0.95, 1.1)
        height = side * math.sqrt(3) / 2 * rng.uniform(0.85, 1.12)
        apex = rng.uniform(-0.08, 0.08) * side
        corners = [(apex, -2 * height / 3), (side / 2, height / 3), (-side / 2, height / 3)]
    c, s = math.cos(angle), math.sin(angle)
    return [(cx + x * c - y * s, cy + x * s + y * c) for x, y in corners]


def draw_varied_shape(rng: random.Random, *, min_side: int = 40, max_side: int = 1600) -> ShapeSample:
    """One image from the wide training distribution (see the module docstring); long side from
    ``min_side`` to ``max_side`` px (log-uniform), aspect ratio 1:3 to 3:1."""
    colour = rng.choice(list(COLOURS))
    shape = rng.choice(SHAPES)
    long_side = int(math.exp(rng.uniform(math.log(min_side), math.log(max_side))))
    ratio = math.exp(rng.uniform(math.log(1 / 3), math.log(3.0)))
    short_side = max(12, int(long_side / max(ratio, 1 / ratio)))
    w, h = (long_side, short_side) if ratio >= 1 else (short_side, long_side)
    image = _varied_background((w, h), rng)

    side = min(w, h)
    extent = rng.uniform(0.28, 0.88) * side
    angle = math.radians(rng.uniform(-22, 22))
    if shape == "circle":
        rx = extent / 2 * rng.uniform(0.95, 1.05)
        ry = extent / 2 * rng.uniform(0.95, 1.05)
        points = None
        span_x, span_y = rx, ry
    else:
        points = _outline(shape, 0.0, 0.0, extent, angle, rng)
        span_x = max(abs(x) for x, _ in points)
        span_y = max(abs(y) for _, y in points)
        scale = min(1.0, 0.98 * w / (2 * span_x), 0.98 * h / (2 * span_y))
        points = [(x * scale, y * scale) for x, y in points]
        span_x, span_y = span_x * scale, span_y * scale
    cx = rng.uniform(span_x, max(span_x, w - span_x))
    cy = rng.uniform(span_y, max(span_y, h - span_y))

    ss = 4 if max(w, h) <= 400 else 2  # draw supersampled on a mask, then downsample: smooth edges
    mask = Image.new("L", (w * ss, h * ss), 0)
    pen = ImageDraw.Draw(mask)
    if points is None:
        pen.ellipse([ss * (cx - rx), ss * (cy - ry), ss * (cx + rx), ss * (cy + ry)], fill=255)
    else:
        pen.polygon([(ss * (cx + x), ss * (cy + y)) for x, y in points], fill=255)
    mask = mask.resize((w, h), Image.Resampling.BOX)
    fill = Image.new("RGB", (w, h), _jitter(COLOURS[colour], rng, 30))
    if rng.random() < 0.3:  # uneven light across the shape
        fill = Image.composite(fill, Image.new("RGB", (w, h), _jitter(COLOURS[colour], rng, 45)), _ramp((w, h), rng))
    image.paste(fill, (0, 0), mask)
    if rng.random() < 0.25:  # sensor noise over everything
        image = Image.blend(image, _grain((w, h), rng, rng.uniform(10, 50), 1), rng.uniform(0.05, 0.2))
    if rng.random() < 0.35:
        image = image.filter(ImageFilter.GaussianBlur(max(0.3, side * rng.uniform(0.002, 0.025))))
    return ShapeSample(image=image, colour=colour, shape=shape)
