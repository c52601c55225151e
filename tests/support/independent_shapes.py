"""Coloured shapes from a generator written apart from the training one, to check the toy generalises.

Written from the task's description only, not from :mod:`renamer_ray.toy.shapes` (it shares the four
colours' RGB values and nothing else): shapes are rendered with numpy from signed distances (analytic
anti-aliasing), backgrounds are numpy arrays, and the ranges are the ones the issue names:

- long side 48–1,600 px (log-uniform), aspect ratio 0.4–2.5 (log-uniform);
- a circle, square or equilateral triangle, 35–80 % of the short side, rotated ±15°, anywhere inside;
- backgrounds: flat, gradient (any direction), noise, dark — low-saturation colours, never a shape colour;
- sometimes a Gaussian blur, sometimes sensor-like noise over the whole image;
- encoded as JPEG, PNG, WebP or HEIC at varied quality.

Everything comes from the ``random.Random`` passed in: the same seed draws the same bytes.
"""

from __future__ import annotations

import io
import math
import random

import numpy as np
import pillow_heif
from PIL import Image, ImageFilter

from renamer_ray.toy.shapes import COLOURS

pillow_heif.register_heif_opener()

SHAPE_NAMES = ("circle", "square", "triangle")
FORMAT_NAMES = ("JPEG", "PNG", "WEBP", "HEIC")
_PIL_FORMAT = {"JPEG": "JPEG", "PNG": "PNG", "WEBP": "WEBP", "HEIC": "HEIF"}


def _log_uniform(rng: random.Random, lo: float, hi: float) -> float:
    return math.exp(rng.uniform(math.log(lo), math.log(hi)))


def _muted(rng: random.Random, lo: int = 0, hi: int = 255) -> np.ndarray:
    """A grey with a faint tint: saturation far below any of the four shape colours."""
    level = rng.uniform(lo, hi)
    tint = np.array([rng.uniform(-14, 14) for _ in range(3)])
    return np.clip(level + tint, 0, 255)


def _backdrop(rng: random.Random, w: int, h: int) -> tuple[np.ndarray, str]:
    kind = rng.choice(("flat", "gradient", "noise", "dark"))
    if kind == "flat":
        return np.broadcast_to(_muted(rng), (h, w, 3)).astype(np.float64), kind
    if kind == "dark":
        base = _muted(rng, 0, 45)
        out = np.broadcast_to(base, (h, w, 3)).astype(np.float64)
        if rng.random() < 0.5:  # a dim vignette or a faint ramp, as night shots have
            ys, xs = np.mgrid[0:h, 0:w]
            r = np.hypot((xs - w / 2) / max(w, 1), (ys - h / 2) / max(h, 1))
            out = out * (1.0 - rng.uniform(0.2, 0.7) * np.clip(r, 0, 1))[..., None]
        return out, kind
    if kind == "gradient":
        a, b = _muted(rng), _muted(rng)
        theta = rng.uniform(0, 2 * math.pi)
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
        t = (xs - w / 2) * math.cos(theta) + (ys - h / 2) * math.sin(theta)
        t = (t - t.min()) / max(float(t.max() - t.min()), 1e-9)
        return a * (1 - t[..., None]) + b * t[..., None], kind
    # noise: per-pixel Gaussian on a muted colour, grey or slightly chromatic, sometimes grainy-blotchy
    sigma = rng.uniform(6, 40)
    nprng = np.random.default_rng(rng.getrandbits(32))
    if rng.random() < 0.5:
        grain = nprng.normal(0, sigma, (h, w, 1)).repeat(3, axis=2)
    else:
        grain = nprng.normal(0, sigma, (h, w, 3)) * np.array([1.0, 0.8, 1.1])
    if rng.random() < 0.4:  # coarser blobs: blur the grain and restore its amplitude
        img = Image.fromarray(np.clip(grain + 128, 0, 255).astype(np.uint8))
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(1.0, 4.0)))
        grain = (np.asarray(img, dtype=np.float64) - 128) * 2.5
    return _muted(rng, 30, 225) + grain, kind


def _coverage(shape: str, w: int, h: int, cx: float, cy: float, size: float, theta: float) -> np.ndarray:
    """Fraction of each pixel inside the shape, from its signed distance (1 px anti-aliasing ramp)."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    px, py = xs + 0.5 - cx, ys + 0.5 - cy
    if shape == "circle":
        dist = np.hypot(px, py) - size / 2
    else:
        # rotate the points into the shape's frame; a convex polygon's distance ≈ max over edges
        c, s = math.cos(-theta), math.sin(-theta)
        u, v = px * c - py * s, px * s + py * c
        if shape == "square":
            dist = np.maximum(np.abs(u), np.abs(v)) - size / 2
        else:  # equilateral triangle of side ``size``, apex up, centred on its centroid
            inradius = size / (2 * math.sqrt(3))
            normals = [(0.0, 1.0), (math.sqrt(3) / 2, -0.5), (-math.sqrt(3) / 2, -0.5)]
            dist = np.max(np.stack([u * nx + v * ny for nx, ny in normals]), axis=0) - inradius
    return np.clip(0.5 - dist, 0.0, 1.0)


def _extent(shape: str, size: float, theta: float) -> tuple[float, float]:
    """Half width and half height of the rotated shape's bounding box around its centre."""
    if shape == "circle":
        return size / 2, size / 2
    if shape == "square":
        corners = [(sx * size / 2, sy * size / 2) for sx in (-1, 1) for sy in (-1, 1)]
    else:
        circum = size / math.sqrt(3)
        corners = [(circum * math.cos(a), circum * math.sin(a))
                   for a in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)]
    c, s = math.cos(theta), math.sin(theta)
    rotated = [(x * c - y * s, x * s + y * c) for x, y in corners]
    return max(abs(x) for x, _ in rotated), max(abs(y) for _, y in rotated)


def draw_image(rng: random.Random) -> tuple[Image.Image, str, dict]:
    """One RGB image, its label and what was drawn (for reports)."""
    colour = rng.choice(sorted(COLOURS))
    shape = rng.choice(SHAPE_NAMES)
    long_side = int(round(_log_uniform(rng, 48, 1600)))
    aspect = _log_uniform(rng, 0.4, 2.5)  # width / height
    if aspect >= 1:
        w, h = long_side, max(1, int(round(long_side / aspect)))
    else:
        w, h = max(1, int(round(long_side * aspect))), long_side
    short = min(w, h)
    theta = 0.0 if shape == "circle" else math.radians(rng.uniform(-15, 15))
    size = rng.uniform(0.35, 0.80) * short
    hw, hh = _extent(shape, size, theta)
    if 2 * hw > w or 2 * hh > h:  # a rotated square near 80 % can overflow the short side: shrink
        size *= min(w / (2 * hw), h / (2 * hh)) * 0.98
        hw, hh = _extent(shape, size, theta)
    cx, cy = rng.uniform(hw, w - hw), rng.uniform(hh, h - hh)

    canvas, background = _backdrop(rng, w, h)
    paint = np.clip(np.array(COLOURS[colour], dtype=np.float64)
                    + np.array([rng.uniform(-18, 18) for _ in range(3)]), 0, 255)
    alpha = _coverage(shape, w, h, cx, cy, size, theta)[..., None]
    pixels = canvas * (1 - alpha) + paint * alpha
    if rng.random() < 0.2:  # sensor noise over everything
        pixels = pixels + np.random.default_rng(rng.getrandbits(32)).normal(0, rng.uniform(2, 10), pixels.shape)
    image = Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8), "RGB")
    blur = 0.0
    if rng.random() < 0.35:
        blur = max(0.3, short * rng.uniform(0.003, 0.02))
        image = image.filter(ImageFilter.GaussianBlur(blur))
    facts = dict(size=(w, h), background=background, fill=round(size / short, 2),
                 angle=round(math.degrees(theta), 1), blur=round(blur, 2))
    return image, f"{colour}-{shape}", facts


def encode(image: Image.Image, fmt: str, rng: random.Random) -> bytes:
    buf = io.BytesIO()
    options = {} if fmt == "PNG" else {"quality": rng.randint(55, 95)}
    if fmt == "HEIC":  # x265 single-threaded: faster on a busy machine, and the same bytes every run
        options["enc_params"] = {"x265:pools": "none"}
    image.save(buf, format=_PIL_FORMAT[fmt], **options)
    return buf.getvalue()


def draw_with_facts(rng: random.Random) -> tuple[bytes, str, str, dict]:
    """:func:`draw` plus what was drawn (size, background, fill, angle, blur)."""
    image, label, facts = draw_image(rng)
    fmt = rng.choice(FORMAT_NAMES)
    return encode(image, fmt, rng), fmt, label, facts


def draw(rng: random.Random) -> tuple[bytes, str, str]:
    """(encoded file bytes, format name — JPEG / PNG / WEBP / HEIC, correct label ``<colour>-<shape>``)."""
    data, fmt, label, _ = draw_with_facts(rng)
    return data, fmt, label


def draw_many(seed: int, count: int) -> list[tuple[bytes, str, str]]:
    rng = random.Random(seed)
    return [draw(rng) for _ in range(count)]
