"""Procedural drawings for the offline stand-in of the hot dog data set.

The real "hot dog vs not hot dog" photos and ImageNet weights are not reachable offline, so the
book draws a synthetic stand-in instead:

* the *target* set has two classes, ``"hotdog"`` (a sausage lying in a split bun) and
  ``"not-hotdog"`` (other foods and look-alikes: an empty bun, a sausage without a bun, a sausage
  next to a bun, a banana, a baguette, a sub sandwich, a burger, a pizza slice, ...);
* the *source* set (playing the role of ImageNet) has many classes, among them ``"hotdog"``.

Every food is drawn by one sprite drawer that the target negatives and the source classes share.
Both sets share the same backgrounds, plates, clutter and photographic jitter, so the class of a
target image is decided by the configuration of its parts, not by its colours or its background.

A *shifted* test set draws the same target scenes on another backdrop (``background="texture"``
of :func:`draw_target`): out of the training distribution, for measuring how a fine-tuned model
holds up under a distribution shift.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

__all__ = ["SOURCE_CLASSES", "TARGET_BACKGROUNDS", "TARGET_CLASSES", "draw_source", "draw_target"]

Color = tuple[int, int, int]
SpriteDrawer = Callable[[np.random.Generator, int], Image.Image]
Backdrop = Callable[[np.random.Generator, tuple[int, int]], Image.Image]

TARGET_CLASSES: tuple[str, ...] = ("hotdog", "not-hotdog")

# Sprites are drawn at this multiple of their final size, then reduced (anti-aliasing).
_SUPERSAMPLING = 2

_WHITE: Color = (255, 255, 255)
_BLACK: Color = (0, 0, 0)
_SAUSAGE_BASES: tuple[Color, ...] = ((178, 64, 44), (196, 104, 92), (140, 72, 42), (160, 52, 40))
_BUN_BASES: tuple[Color, ...] = ((222, 168, 98), (234, 196, 136), (196, 134, 72), (214, 150, 84))
_CRUMB_BASES: tuple[Color, ...] = ((242, 226, 186), (236, 214, 168), (246, 234, 204))
_SAUCES: tuple[Color, ...] = ((236, 196, 32), (200, 32, 28), (112, 160, 48), (246, 240, 226))
_BRIGHTS: tuple[Color, ...] = (
    (220, 40, 40),
    (240, 200, 40),
    (40, 110, 210),
    (60, 170, 80),
    (240, 130, 30),
    (150, 70, 190),
    (240, 240, 240),
    (236, 120, 170),
)
_CLOTH: tuple[Color, ...] = (
    (200, 40, 40),
    (40, 80, 160),
    (60, 130, 70),
    (230, 200, 60),
    (120, 120, 120),
    (170, 90, 40),
)


# ----------------------------------------------------------------------------- colour helpers


def _uniform(rng: np.random.Generator, low: float, high: float) -> float:
    """One uniform float in ``[low, high)``."""
    return float(rng.uniform(low, high))


def _clip_color(values: Sequence[float]) -> Color:
    r, g, b = (int(min(255, max(0, round(v)))) for v in values)
    return (r, g, b)


def _jitter(rng: np.random.Generator, base: Color, spread: float = 14.0) -> Color:
    """Return ``base`` with a shared brightness shift and small per-channel noise."""
    shift = rng.normal(0.0, spread)
    noise = rng.normal(0.0, spread * 0.5, 3)
    return _clip_color([c + shift + n for c, n in zip(base, noise, strict=True)])


def _pick(rng: np.random.Generator, options: Sequence[Color], spread: float = 14.0) -> Color:
    """Pick one of ``options`` and jitter it."""
    return _jitter(rng, options[int(rng.integers(len(options)))], spread)


def _mix(a: Color, b: Color, t: float) -> Color:
    """Linear blend, ``t=0`` gives ``a`` and ``t=1`` gives ``b``."""
    return _clip_color([x + (y - x) * t for x, y in zip(a, b, strict=True)])


def _shade(c: Color, factor: float) -> Color:
    """Scale a colour's brightness."""
    return _clip_color([x * factor for x in c])


def _random_color(rng: np.random.Generator) -> Color:
    return _clip_color(rng.uniform(20, 245, 3))


# ----------------------------------------------------------------------------- geometry helpers


def _layer(width: float, height: float) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    """A transparent RGBA layer and a drawing context on it."""
    img = Image.new("RGBA", (max(2, int(width)), max(2, int(height))), (0, 0, 0, 0))
    return img, ImageDraw.Draw(img)


def _capsule(
    draw: ImageDraw.ImageDraw, cx: float, cy: float, length: float, width: float, fill: Color
) -> None:
    """Horizontal rounded bar (stadium) centred on ``(cx, cy)``."""
    length = max(length, width)
    box = (cx - length / 2, cy - width / 2, cx + length / 2, cy + width / 2)
    draw.rounded_rectangle(box, radius=width / 2, fill=fill)


def _shaded_capsule(
    draw: ImageDraw.ImageDraw, cx: float, cy: float, length: float, width: float, base: Color
) -> None:
    """Capsule with a darker lower rim and a light highlight streak."""
    _capsule(draw, cx, cy, length, width, _shade(base, 0.7))
    _capsule(draw, cx, cy - width * 0.07, length - width * 0.12, width * 0.84, base)
    hl = _mix(base, _WHITE, 0.45)
    _capsule(draw, cx - length * 0.04, cy - width * 0.24, length * 0.72, width * 0.15, hl)


def _ellipse_points(
    cx: float, cy: float, rx: float, ry: float, angle: float, n: int = 14
) -> list[tuple[float, float]]:
    """Polygon approximating an ellipse rotated by ``angle`` radians."""
    t = np.linspace(0.0, 2.0 * math.pi, n, endpoint=False)
    x, y = rx * np.cos(t), ry * np.sin(t)
    ca, sa = math.cos(angle), math.sin(angle)
    return list(zip((cx + x * ca - y * sa).tolist(), (cy + x * sa + y * ca).tolist(), strict=True))


def _tube_points(
    cx: float, cy: float, length: float, half_widths: np.ndarray, bend: float
) -> list[tuple[float, float]]:
    """Outline of a tube along an arc of total turning angle ``bend`` (radians)."""
    s = np.linspace(-0.5, 0.5, len(half_widths))
    if abs(bend) < 1e-3:
        x, y = cx + s * length, np.full_like(s, cy)
        nx, ny = np.zeros_like(s), np.ones_like(s)
    else:
        radius = length / bend
        theta = s * bend
        x = cx + radius * np.sin(theta)
        y = cy + radius * (1.0 - np.cos(theta)) - radius * (1.0 - math.cos(bend / 2)) / 2
        nx, ny = -np.sin(theta), np.cos(theta)
    upper = zip((x - nx * half_widths).tolist(), (y - ny * half_widths).tolist(), strict=True)
    lower = zip((x + nx * half_widths).tolist(), (y + ny * half_widths).tolist(), strict=True)
    return list(upper) + list(lower)[::-1]


def _bar_points(
    x0: float, y0: float, x1: float, y1: float, width: float
) -> list[tuple[float, float]]:
    """Rectangle of the given width around the segment ``(x0, y0)-(x1, y1)``."""
    dx, dy = x1 - x0, y1 - y0
    norm = math.hypot(dx, dy) or 1.0
    ox, oy = -dy / norm * width / 2, dx / norm * width / 2
    return [(x0 + ox, y0 + oy), (x1 + ox, y1 + oy), (x1 - ox, y1 - oy), (x0 - ox, y0 - oy)]


# ----------------------------------------------------------------------------- food parts


def _sausage_color(rng: np.random.Generator) -> Color:
    return _pick(rng, _SAUSAGE_BASES, 12.0)


def _part_sausage(
    draw: ImageDraw.ImageDraw,
    rng: np.random.Generator,
    cx: float,
    cy: float,
    length: float,
    width: float,
) -> None:
    """A shaded sausage, optionally with grill marks."""
    base = _sausage_color(rng)
    _shaded_capsule(draw, cx, cy, length, width, base)
    if rng.random() < 0.35:
        dark = _shade(base, 0.55)
        for i in range(int(rng.integers(3, 7))):
            x = cx - length * 0.35 + i * length * 0.13
            pts = _bar_points(x, cy - width * 0.3, x + width * 0.35, cy + width * 0.3, width * 0.1)
            draw.polygon(pts, fill=dark)


def _part_toppings(
    draw: ImageDraw.ImageDraw,
    rng: np.random.Generator,
    cx: float,
    cy: float,
    length: float,
    width: float,
) -> None:
    """Zero to two toppings over the sausage-sized region centred on ``(cx, cy)``."""
    for _ in range(int(rng.choice([0, 1, 1, 2]))):
        kind = int(rng.integers(4))
        color = _pick(rng, _SAUCES, 10.0)
        span = length * _uniform(rng, 0.55, 0.8)
        if kind == 0:  # zigzag sauce line
            n = int(rng.integers(5, 10))
            xs = np.linspace(cx - span / 2, cx + span / 2, n)
            ys = cy + width * 0.3 * np.where(np.arange(n) % 2 == 0, -1.0, 1.0)
            draw.line(
                list(zip(xs.tolist(), ys.tolist(), strict=True)),
                fill=color,
                width=max(1, int(width * 0.13)),
                joint="curve",
            )
        elif kind == 1:  # wavy sauce line
            xs = np.linspace(cx - span / 2, cx + span / 2, 16)
            ys = cy + width * 0.18 * np.sin(np.linspace(0, _uniform(rng, 3, 9), 16))
            draw.line(
                list(zip(xs.tolist(), ys.tolist(), strict=True)),
                fill=color,
                width=max(1, int(width * 0.16)),
                joint="curve",
            )
        else:  # relish or onion bits
            bit = (
                _pick(rng, ((90, 150, 40), (60, 120, 40)), 10.0)
                if kind == 2
                else _pick(rng, ((240, 236, 220), (220, 210, 170)), 8.0)
            )
            r = width * 0.07
            for _ in range(int(rng.integers(6, 14))):
                x = cx + _uniform(rng, -0.5, 0.5) * span
                y = cy + _uniform(rng, -0.3, 0.3) * width
                draw.rectangle((x - r, y - r, x + r, y + r), fill=bit)


def _part_open_bun(
    draw: ImageDraw.ImageDraw,
    rng: np.random.Generator,
    cx: float,
    cy: float,
    length: float,
    width: float,
    gap: float,
) -> None:
    """A split hot dog bun seen from above: two crust halves around a crumb opening."""
    crust = _pick(rng, _BUN_BASES)
    _capsule(draw, cx, cy, length, width, _shade(crust, 0.78))
    _capsule(draw, cx, cy, length - width * 0.1, width * 0.9, crust)
    hl = _mix(crust, _WHITE, 0.3)
    for side in (-1.0, 1.0):
        _capsule(draw, cx, cy + side * width * 0.3, length * 0.75, width * 0.08, hl)
    crumb = _pick(rng, _CRUMB_BASES, 8.0)
    _capsule(draw, cx, cy, length * 0.93, gap, _shade(crumb, 0.88))
    _capsule(draw, cx, cy - gap * 0.06, length * 0.9, gap * 0.82, crumb)


def _part_side_bun_half(
    draw: ImageDraw.ImageDraw,
    cx: float,
    cy: float,
    length: float,
    height: float,
    crust: Color,
    crumb: Color | None,
) -> None:
    """One half of a bun seen from the side, optionally showing its cut crumb face on top."""
    _capsule(draw, cx, cy, length, height, _shade(crust, 0.8))
    _capsule(draw, cx, cy - height * 0.05, length - height * 0.1, height * 0.82, crust)
    if crumb is not None:
        _capsule(draw, cx, cy - height * 0.28, length * 0.9, height * 0.3, crumb)
    else:
        hl = _mix(crust, _WHITE, 0.3)
        _capsule(draw, cx, cy - height * 0.2, length * 0.7, height * 0.12, hl)


# ----------------------------------------------------------------------------- food sprites
# A sprite drawer takes (rng, length) and returns an RGBA image of one object lying
# horizontally, drawn at ``_SUPERSAMPLING`` times the final size, whose longest side is about
# ``length``.


def _sprite_hotdog(rng: np.random.Generator, length: int) -> Image.Image:
    """A sausage lying in a split bun, with its ends sticking out, maybe with toppings."""
    s_len = float(length)
    b_len = s_len * _uniform(rng, 0.74, 0.88)
    b_wid = b_len * _uniform(rng, 0.3, 0.42)
    s_wid = b_wid * _uniform(rng, 0.4, 0.5)
    img, draw = _layer(s_len * 1.04, b_wid * 1.9)
    cx, cy = img.width / 2, img.height / 2
    if rng.random() < 0.5:  # seen from above
        _part_open_bun(draw, rng, cx, cy, b_len, b_wid, s_wid * 1.45)
        scx = cx + _uniform(rng, -0.04, 0.04) * b_len
        _part_sausage(draw, rng, scx, cy, s_len, s_wid)
        _part_toppings(draw, rng, scx, cy, s_len, s_wid)
        return img
    crust = _pick(rng, _BUN_BASES)
    crumb = _pick(rng, _CRUMB_BASES, 8.0)
    half = b_wid * 0.5
    back_y = cy - s_wid * 0.5 - half * 0.05
    _part_side_bun_half(draw, cx, back_y, b_len * 0.97, half, _shade(crust, 0.9), crumb)
    _part_sausage(draw, rng, cx, cy, s_len, s_wid)
    _part_toppings(draw, rng, cx, cy - s_wid * 0.1, s_len, s_wid * 0.7)
    _part_side_bun_half(draw, cx, cy + s_wid * 0.5 + half * 0.32, b_len, half, crust, None)
    return img


def _sprite_bun(rng: np.random.Generator, length: int) -> Image.Image:
    """An empty bun: a split hot dog bun, a closed one, or a round burger bun."""
    kind = int(rng.integers(3))
    if kind == 2:
        return _sprite_burger_bun(rng, length)
    b_len = float(length)
    b_wid = b_len * _uniform(rng, 0.3, 0.42)
    img, draw = _layer(b_len * 1.04, b_wid * 1.5)
    cx, cy = img.width / 2, img.height / 2
    if kind == 0:
        _part_open_bun(draw, rng, cx, cy, b_len, b_wid, b_wid * _uniform(rng, 0.3, 0.6))
        if rng.random() < 0.3:
            _part_toppings(draw, rng, cx, cy, b_len * 0.9, b_wid * 0.4)
        return img
    crust = _pick(rng, _BUN_BASES)
    crumb = _pick(rng, _CRUMB_BASES, 8.0)
    half = b_wid * 0.52
    _part_side_bun_half(draw, cx, cy - half * 0.35, b_len * 0.97, half, _shade(crust, 0.9), crumb)
    _part_side_bun_half(draw, cx, cy + half * 0.35, b_len, half, crust, None)
    return img


def _sprite_burger_bun(rng: np.random.Generator, length: int) -> Image.Image:
    """A round sesame bun seen from above."""
    d = float(length) * 0.8
    img, draw = _layer(d * 1.1, d * 1.1)
    c = img.width / 2
    crust = _pick(rng, _BUN_BASES)
    draw.ellipse((c - d / 2, c - d / 2, c + d / 2, c + d / 2), fill=_shade(crust, 0.8))
    r = d * 0.46
    draw.ellipse((c - r, c - r * 1.05, c + r, c + r * 0.95), fill=crust)
    r2 = d * 0.22
    hl = _mix(crust, _WHITE, 0.25)
    draw.ellipse(
        (c - r2 - d * 0.08, c - r2 - d * 0.1, c + r2 - d * 0.08, c + r2 - d * 0.1), fill=hl
    )
    _sesame(draw, rng, c, c, d * 0.38, d * 0.38, d)
    return img


def _sesame(
    draw: ImageDraw.ImageDraw,
    rng: np.random.Generator,
    cx: float,
    cy: float,
    rx: float,
    ry: float,
    scale: float,
) -> None:
    """Sesame seeds scattered inside an ellipse."""
    seed = _jitter(rng, (246, 234, 200), 6.0)
    for _ in range(int(rng.integers(6, 16))):
        a, rad = _uniform(rng, 0, 2 * math.pi), math.sqrt(_uniform(rng, 0, 1))
        x, y = cx + rx * rad * math.cos(a), cy + ry * rad * math.sin(a)
        draw.polygon(_ellipse_points(x, y, scale * 0.03, scale * 0.015, a, 8), fill=seed)


def _sprite_sausage(rng: np.random.Generator, length: int) -> Image.Image:
    """One to three sausages without a bun, maybe on a fork, maybe with a sauce."""
    s_len = float(length)
    s_wid = s_len * _uniform(rng, 0.12, 0.2)
    count = int(rng.choice([1, 1, 1, 2, 3]))
    img, draw = _layer(s_len * 1.05, s_wid * (count * 1.3 + 1.0) + s_len * 0.25)
    cx = img.width / 2
    y0 = img.height / 2 - (count - 1) * s_wid * 0.6
    for i in range(count):
        cy = y0 + i * s_wid * 1.2
        _part_sausage(draw, rng, cx + _uniform(rng, -0.05, 0.05) * s_len, cy, s_len * 0.98, s_wid)
        if rng.random() < 0.25:
            _part_toppings(draw, rng, cx, cy, s_len, s_wid)
    if count == 1 and rng.random() < 0.4:
        _part_fork(draw, rng, cx + _uniform(rng, -0.2, 0.2) * s_len, img.height / 2, s_len * 0.55)
    return img


def _part_fork(
    draw: ImageDraw.ImageDraw, rng: np.random.Generator, x: float, y: float, size: float
) -> None:
    """A fork stuck into a horizontal object at ``(x, y)``, handle pointing down."""
    metal = _jitter(rng, (196, 198, 204), 10.0)
    w = size * 0.05
    for k in (-1.5, -0.5, 0.5, 1.5):
        draw.line(
            (x + k * w * 1.1, y - size * 0.05, x + k * w * 1.1, y + size * 0.18),
            fill=metal,
            width=max(1, int(w * 0.5)),
        )
    draw.rectangle((x - w * 2.1, y + size * 0.15, x + w * 2.1, y + size * 0.22), fill=metal)
    draw.polygon(_bar_points(x, y + size * 0.2, x, y + size * 0.8, w * 1.1), fill=metal)


def _sprite_sausage_and_bun(rng: np.random.Generator, length: int) -> Image.Image:
    """A sausage lying next to (not inside) an empty bun."""
    b_len = float(length) * 0.9
    b_wid = b_len * _uniform(rng, 0.3, 0.4)
    s_wid = b_wid * _uniform(rng, 0.36, 0.46)
    gap = b_wid * _uniform(rng, 0.15, 0.6)
    img, draw = _layer(length * 1.15, b_wid + s_wid + gap + b_wid * 0.4)
    cx = img.width / 2
    by = b_wid * 0.2 + b_wid / 2
    sy = by + b_wid / 2 + gap + s_wid / 2
    if rng.random() < 0.5:
        by, sy = img.height - by, img.height - sy
    _part_open_bun(draw, rng, cx, by, b_len, b_wid, b_wid * _uniform(rng, 0.3, 0.55))
    _part_sausage(
        draw,
        rng,
        cx + _uniform(rng, -0.1, 0.1) * b_len,
        sy,
        length * _uniform(rng, 0.85, 1.0),
        s_wid,
    )
    return img


def _sprite_banana(rng: np.random.Generator, length: int) -> Image.Image:
    """A curved banana with a stem and a dark tip."""
    ln = float(length)
    wid = ln * _uniform(rng, 0.17, 0.24)
    bend = _uniform(rng, 0.7, 1.4) * (1 if rng.random() < 0.5 else -1)
    img, draw = _layer(ln * 1.05, ln * 0.55)
    cx, cy = img.width / 2, img.height / 2
    s = np.linspace(0.0, 1.0, 24)
    profile = np.clip(np.sin(np.pi * s), 0.0, None) ** 0.5 * wid / 2 + wid * 0.04
    yellow = _pick(rng, ((236, 206, 58), (226, 196, 70), (200, 200, 70), (240, 180, 50)), 10.0)
    draw.polygon(_tube_points(cx, cy, ln * 0.9, profile, bend), fill=_shade(yellow, 0.78))
    draw.polygon(_tube_points(cx, cy - wid * 0.08, ln * 0.84, profile * 0.65, bend), fill=yellow)
    if rng.random() < 0.5:
        spot = _shade(yellow, 0.45)
        for _ in range(int(rng.integers(3, 9))):
            x, y = cx + _uniform(rng, -0.35, 0.35) * ln, cy + _uniform(rng, -0.1, 0.1) * wid
            r = wid * _uniform(rng, 0.03, 0.08)
            draw.ellipse((x - r, y - r, x + r, y + r), fill=spot)
    pts = _tube_points(cx, cy, ln * 0.9, profile, bend)
    n = len(profile)
    tip, stem = pts[0], pts[n - 1]
    r = wid * 0.1
    draw.ellipse((tip[0] - r, tip[1] - r, tip[0] + r, tip[1] + r), fill=(60, 44, 30))
    end = ((stem[0] + pts[n][0]) / 2, (stem[1] + pts[n][1]) / 2)
    draw.line(
        (end[0] - wid * 0.1, end[1], end[0] + wid * 0.35, end[1] - wid * 0.05),
        fill=_mix(yellow, (90, 110, 40), 0.6),
        width=max(1, int(wid * 0.18)),
    )
    return img


def _sprite_baguette(rng: np.random.Generator, length: int) -> Image.Image:
    """A baguette with diagonal scores, or a bread loaf."""
    ln = float(length)
    crust = _pick(rng, ((208, 146, 74), (190, 120, 60), (220, 170, 100)), 12.0)
    crumb = _pick(rng, _CRUMB_BASES, 8.0)
    if rng.random() < 0.3:  # loaf
        wid = ln * _uniform(rng, 0.45, 0.6)
        img, draw = _layer(ln * 1.05, wid * 1.2)
        cx, cy = img.width / 2, img.height / 2
        box = (cx - ln / 2, cy - wid / 2, cx + ln / 2, cy + wid / 2)
        draw.rounded_rectangle(box, radius=wid * 0.35, fill=_shade(crust, 0.75))
        inner = (box[0] + wid * 0.06, box[1] + wid * 0.04, box[2] - wid * 0.06, box[3] - wid * 0.1)
        draw.rounded_rectangle(inner, radius=wid * 0.3, fill=crust)
        _capsule(draw, cx, cy - wid * 0.05, ln * 0.7, wid * 0.12, _mix(crust, crumb, 0.6))
        return img
    wid = ln * _uniform(rng, 0.13, 0.2)
    img, draw = _layer(ln * 1.05, wid * 1.6)
    cx, cy = img.width / 2, img.height / 2
    s = np.linspace(0.0, 1.0, 20)
    profile = np.sin(np.pi * s) ** 0.35 * wid / 2 + wid * 0.05
    bend = _uniform(rng, -0.25, 0.25)
    draw.polygon(_tube_points(cx, cy, ln, profile, bend), fill=_shade(crust, 0.78))
    draw.polygon(_tube_points(cx, cy - wid * 0.05, ln * 0.97, profile * 0.84, bend), fill=crust)
    score = _mix(crust, crumb, 0.65)
    n = int(rng.integers(4, 7))
    for i in range(n):
        x = cx + (i - (n - 1) / 2) * ln * 0.8 / n
        draw.polygon(_ellipse_points(x, cy, ln * 0.07, wid * 0.12, -0.45, 10), fill=score)
    return img


def _sprite_corn(rng: np.random.Generator, length: int) -> Image.Image:
    """A corn cob with rows of kernels, sometimes with husk leaves."""
    ln = float(length)
    wid = ln * _uniform(rng, 0.24, 0.32)
    img, draw = _layer(ln * 1.3, wid * 2.0)
    cx, cy = img.width / 2 + ln * 0.1, img.height / 2
    kernel = _pick(rng, ((240, 200, 60), (236, 180, 40), (246, 220, 110)), 10.0)
    _capsule(draw, cx, cy, ln, wid, _shade(kernel, 0.6))
    rows, cols = int(rng.integers(10, 16)), 5
    kx = ln * 0.92 / rows
    ky = wid * 0.9 / cols
    for j in range(cols):
        y = cy - wid * 0.45 + (j + 0.5) * ky
        edge = abs(j - (cols - 1) / 2) / cols
        col = _shade(kernel, 1.05 - edge * 0.5)
        xoff = kx * 0.5 * (j % 2)
        lim = ln / 2 - wid * (0.5 - math.sqrt(max(0.0, 0.25 - (y - cy) ** 2 / wid**2)))
        for i in range(rows):
            x = cx - ln * 0.46 + (i + 0.5) * kx + xoff * 0.5
            if abs(x - cx) > lim - kx * 0.4:
                continue
            draw.ellipse((x - kx * 0.42, y - ky * 0.42, x + kx * 0.42, y + ky * 0.42), fill=col)
    if rng.random() < 0.5:
        husk = _pick(rng, ((120, 160, 60), (170, 180, 90), (200, 190, 120)), 12.0)
        x0 = cx - ln / 2
        for k in (-1, 1, 0):
            tip = (x0 - ln * _uniform(rng, 0.1, 0.25), cy + k * wid * _uniform(rng, 0.5, 0.9))
            pts = [
                (x0 + ln * 0.25, cy + k * wid * 0.1 - wid * 0.3),
                tip,
                (x0 + ln * 0.25, cy + k * wid * 0.1 + wid * 0.3),
            ]
            draw.polygon(pts, fill=_shade(husk, 0.85 + 0.1 * k))
    return img


def _sprite_carrot(rng: np.random.Generator, length: int) -> Image.Image:
    """A tapering carrot with ridges and green leaves."""
    ln = float(length)
    wid = ln * _uniform(rng, 0.16, 0.24)
    img, draw = _layer(ln * 1.3, wid * 2.2)
    cx, cy = img.width / 2 + ln * 0.12, img.height / 2
    s = np.linspace(0.0, 1.0, 20)
    profile = (1.0 - s) ** 0.8 * np.minimum(1.0, s * 10 + 0.3) ** 0.5 * wid / 2 + 0.5
    orange = _pick(rng, ((236, 120, 30), (220, 100, 30), (240, 140, 50)), 10.0)
    bend = _uniform(rng, -0.3, 0.3)
    draw.polygon(_tube_points(cx, cy, ln, profile, bend), fill=_shade(orange, 0.8))
    draw.polygon(_tube_points(cx, cy - wid * 0.06, ln * 0.96, profile * 0.7, bend), fill=orange)
    ridge = _shade(orange, 0.7)
    for _ in range(int(rng.integers(3, 7))):
        t = _uniform(rng, 0.1, 0.7)
        x = cx - ln / 2 + t * ln
        h = wid * (1 - t) * 0.35
        draw.line(
            (x, cy - h, x + wid * 0.08, cy + h * 0.3), fill=ridge, width=max(1, int(wid / 14))
        )
    green = _pick(rng, ((60, 140, 50), (90, 160, 60)), 12.0)
    x0 = cx - ln / 2
    for _ in range(int(rng.integers(3, 6))):
        a = math.pi + _uniform(rng, -0.6, 0.6)
        ll = ln * _uniform(rng, 0.15, 0.3)
        draw.polygon(
            _bar_points(
                x0 + wid * 0.1, cy, x0 + ll * math.cos(a), cy + ll * math.sin(a), wid * 0.12
            ),
            fill=green,
        )
    return img


def _wavy_band(
    draw: ImageDraw.ImageDraw,
    x0: float,
    x1: float,
    y: float,
    height: float,
    amp: float,
    waves: float,
    fill: Color,
) -> None:
    """A horizontal band with a wavy lower edge."""
    xs = np.linspace(x0, x1, 24)
    ys = y + height + amp * np.sin(np.linspace(0.0, waves * 2 * math.pi, 24))
    pts = [(x0, y), (x1, y), *zip(xs[::-1].tolist(), ys[::-1].tolist(), strict=True)]
    draw.polygon(pts, fill=fill)


def _sprite_sandwich(rng: np.random.Generator, length: int) -> Image.Image:
    """A sub sandwich seen from the side: bread, lettuce, cheese, tomato and ham layers."""
    ln = float(length)
    h = ln * _uniform(rng, 0.38, 0.5)
    img, draw = _layer(ln * 1.08, h * 1.25)
    cx, top = img.width / 2, img.height / 2 - h / 2
    crust = _pick(rng, _BUN_BASES)
    x0, x1 = cx - ln / 2, cx + ln / 2
    _part_side_bun_half(draw, cx, top + h * 0.85, ln * 0.98, h * 0.3, crust, None)
    layers = [(90, 170, 60), (240, 200, 60), (210, 60, 50), (220, 140, 140), (240, 236, 220)]
    chosen = rng.permutation(len(layers))[: int(rng.integers(2, 5))]
    th = h * 0.36 / len(chosen)
    for k, idx in enumerate(chosen):
        y = top + h * 0.72 - (k + 1) * th
        _wavy_band(
            draw,
            x0 - ln * 0.02,
            x1 + ln * 0.02,
            y,
            th * 1.1,
            h * 0.03,
            _uniform(rng, 3, 8),
            _jitter(rng, layers[int(idx)], 10.0),
        )
    _part_side_bun_half(draw, cx, top + h * 0.2, ln, h * 0.42, crust, None)
    if rng.random() < 0.5:
        _sesame(draw, rng, cx, top + h * 0.14, ln * 0.4, h * 0.08, h)
    return img


def _sprite_burger(rng: np.random.Generator, length: int) -> Image.Image:
    """A burger seen from the side: stacked bun, patty, cheese, lettuce and tomato."""
    w = float(length) * 0.8
    h = w * _uniform(rng, 0.7, 0.9)
    img, draw = _layer(w * 1.15, h * 1.15)
    cx, top = img.width / 2, img.height / 2 - h / 2
    crust = _pick(rng, _BUN_BASES)
    bottom = (cx - w * 0.46, top + h * 0.8, cx + w * 0.46, top + h)
    draw.rounded_rectangle(bottom, radius=h * 0.06, fill=_shade(crust, 0.85))
    y = top + h * 0.82
    stack = [
        ((110, 60, 36), 0.2, 0.5),
        ((240, 190, 50), 0.07, 0.5),
        ((200, 50, 40), 0.08, 0.48),
        ((90, 170, 60), 0.08, 0.52),
    ]
    for base, th, half in stack:
        if base[0] != 110 and rng.random() < 0.3:
            continue
        y -= h * th
        col = _jitter(rng, base, 10.0)
        draw.rounded_rectangle(
            (cx - w * half, y, cx + w * half, y + h * th * 1.3), radius=h * th * 0.4, fill=col
        )
    draw.chord(
        (cx - w / 2, y - h * 0.45, cx + w / 2, y + h * 0.5), 180, 360, fill=_shade(crust, 0.8)
    )
    draw.chord((cx - w * 0.47, y - h * 0.42, cx + w * 0.47, y + h * 0.46), 180, 360, fill=crust)
    _sesame(draw, rng, cx, y - h * 0.2, w * 0.3, h * 0.12, w)
    return img


def _sprite_pizza(rng: np.random.Generator, length: int) -> Image.Image:
    """A pizza slice: crust, cheese and pepperoni."""
    ln = float(length)
    half = ln * _uniform(rng, 0.3, 0.42)
    img, draw = _layer(ln * 1.1, half * 2.3)
    x0, cy = img.width / 2 - ln / 2, img.height / 2
    cheese = _pick(rng, ((246, 200, 80), (240, 180, 60), (246, 220, 120)), 10.0)
    crust = _pick(rng, _BUN_BASES)
    draw.polygon([(x0, cy - half), (x0 + ln, cy), (x0, cy + half)], fill=_shade(cheese, 0.85))
    inset = ln * 0.04
    draw.polygon(
        [(x0 + inset, cy - half * 0.9), (x0 + ln - inset * 2, cy), (x0 + inset, cy + half * 0.9)],
        fill=cheese,
    )
    cw = ln * 0.16
    draw.rounded_rectangle(
        (x0 - cw * 0.3, cy - half * 1.08, x0 + cw * 0.7, cy + half * 1.08),
        radius=cw / 2,
        fill=crust,
    )
    pep = _pick(rng, ((190, 50, 40), (160, 40, 36)), 10.0)
    for _ in range(int(rng.integers(2, 6))):
        t = _uniform(rng, 0.15, 0.65)
        x = x0 + t * ln
        y = cy + _uniform(rng, -0.55, 0.55) * half * (1 - t)
        r = ln * _uniform(rng, 0.05, 0.08)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=pep)
    if rng.random() < 0.5:
        herb = _jitter(rng, (60, 130, 50), 10.0)
        for _ in range(int(rng.integers(3, 8))):
            t = _uniform(rng, 0.15, 0.7)
            x, y = x0 + t * ln, cy + _uniform(rng, -0.6, 0.6) * half * (1 - t)
            draw.polygon(
                _ellipse_points(x, y, ln * 0.03, ln * 0.015, _uniform(rng, 0, 3), 6), fill=herb
            )
    return img


def _sprite_donut(rng: np.random.Generator, length: int) -> Image.Image:
    """A ring donut, plain or iced, maybe with sprinkles."""
    d = float(length) * 0.75
    img, draw = _layer(d * 1.1, d * 1.1)
    c = img.width / 2
    dough = _pick(rng, _BUN_BASES)
    draw.ellipse((c - d / 2, c - d / 2, c + d / 2, c + d / 2), fill=_shade(dough, 0.8))
    draw.ellipse((c - d * 0.47, c - d * 0.48, c + d * 0.47, c + d * 0.45), fill=dough)
    if rng.random() < 0.75:
        icing = _pick(rng, ((240, 150, 180), (110, 60, 40), (246, 240, 230), (200, 60, 60)), 10.0)
        r = d * _uniform(rng, 0.36, 0.43)
        draw.ellipse((c - r, c - r, c + r, c + r), fill=icing)
        if rng.random() < 0.6:
            for _ in range(int(rng.integers(10, 24))):
                a, rad = _uniform(rng, 0, 2 * math.pi), _uniform(rng, 0.2, 0.38) * d
                x, y = c + rad * math.cos(a), c + rad * math.sin(a)
                b = _uniform(rng, 0, math.pi)
                draw.polygon(
                    _bar_points(
                        x, y, x + d * 0.05 * math.cos(b), y + d * 0.05 * math.sin(b), d * 0.02
                    ),
                    fill=_pick(rng, _BRIGHTS, 5.0),
                )
    hole = d * _uniform(rng, 0.11, 0.16)
    draw.ellipse((c - hole, c - hole, c + hole, c + hole), fill=(0, 0, 0, 0))
    return img


def _sprite_fries(rng: np.random.Generator, length: int) -> Image.Image:
    """French fries, in a carton or loose."""
    ln = float(length)
    img, draw = _layer(ln * 1.1, ln * 1.1)
    c = img.width / 2
    fry = _pick(rng, ((240, 200, 90), (230, 180, 70), (246, 214, 120)), 10.0)
    fw = ln * 0.06
    if rng.random() < 0.5:  # loose fries seen from above
        for _ in range(int(rng.integers(8, 16))):
            x, y = c + _uniform(rng, -0.3, 0.3) * ln, c + _uniform(rng, -0.3, 0.3) * ln
            a, half = _uniform(rng, 0, math.pi), ln * _uniform(rng, 0.12, 0.25)
            dx, dy = half * math.cos(a), half * math.sin(a)
            col = _shade(fry, _uniform(rng, 0.8, 1.05))
            draw.polygon(_bar_points(x - dx, y - dy, x + dx, y + dy, fw), fill=col)
        return img
    box_top, box_bot = c - ln * 0.05, c + ln * 0.45
    for _ in range(int(rng.integers(8, 14))):
        x, y = c + _uniform(rng, -0.25, 0.25) * ln, box_top + ln * 0.2
        a = _uniform(rng, -0.35, 0.35) - math.pi / 2
        ll = ln * _uniform(rng, 0.3, 0.5)
        col = _shade(fry, _uniform(rng, 0.8, 1.05))
        draw.polygon(_bar_points(x, y, x + ll * math.cos(a), y + ll * math.sin(a), fw), fill=col)
    carton = _pick(rng, ((200, 40, 40), (220, 60, 50), (240, 240, 236)), 10.0)
    draw.polygon(
        [
            (c - ln * 0.33, box_top),
            (c + ln * 0.33, box_top),
            (c + ln * 0.25, box_bot),
            (c - ln * 0.25, box_bot),
        ],
        fill=carton,
    )
    draw.line(
        (c - ln * 0.33, box_top, c + ln * 0.33, box_top),
        fill=_shade(carton, 0.7),
        width=max(1, int(ln * 0.02)),
    )
    return img


def _sprite_taco(rng: np.random.Generator, length: int) -> Image.Image:
    """A taco seen from the side: a folded shell filled with meat, lettuce and tomato."""
    w = float(length)
    h = w * _uniform(rng, 0.5, 0.62)
    img, draw = _layer(w * 1.1, h * 1.5)
    cx, rim = img.width / 2, img.height / 2 - h * 0.3
    shell = _pick(rng, ((236, 190, 80), (226, 170, 70), (240, 206, 110)), 10.0)
    box = (cx - w / 2, rim - h, cx + w / 2, rim + h)
    draw.chord(
        (box[0] + w * 0.04, box[1] - h * 0.14, box[2] - w * 0.04, box[3] - h * 0.14),
        0,
        180,
        fill=_shade(shell, 0.75),
    )
    meat, lettuce = _jitter(rng, (120, 66, 40), 10.0), _jitter(rng, (100, 176, 60), 10.0)
    for col, r in ((meat, 0.07), (lettuce, 0.06), (_jitter(rng, (210, 50, 40), 8.0), 0.04)):
        for _ in range(int(rng.integers(6, 12))):
            x, y = cx + _uniform(rng, -0.42, 0.42) * w, rim + _uniform(rng, -0.12, 0.02) * h
            rr = w * r * _uniform(rng, 0.7, 1.2)
            draw.ellipse((x - rr, y - rr, x + rr, y + rr), fill=col)
    draw.chord(box, 0, 180, fill=_shade(shell, 0.82))
    draw.chord(
        (box[0] + w * 0.03, box[1] + h * 0.02, box[2] - w * 0.03, box[3] - h * 0.08),
        0,
        180,
        fill=shell,
    )
    spot = _shade(shell, 0.7)
    for _ in range(int(rng.integers(3, 8))):
        x, y = cx + _uniform(rng, -0.3, 0.3) * w, rim + _uniform(rng, 0.15, 0.6) * h
        rr = w * 0.02
        draw.ellipse((x - rr, y - rr, x + rr, y + rr), fill=spot)
    return img


# ----------------------------------------------------------------------------- non-food sprites


def _sprite_ball(rng: np.random.Generator, length: int) -> Image.Image:
    """A ball: beach ball segments, a striped ball or a plain ball, with a highlight."""
    d = float(length) * 0.7
    img, draw = _layer(d * 1.1, d * 1.1)
    c = img.width / 2
    box = (c - d / 2, c - d / 2, c + d / 2, c + d / 2)
    base = _pick(rng, _BRIGHTS, 12.0)
    draw.ellipse(box, fill=base)
    kind = int(rng.integers(3))
    if kind == 0:
        n = int(rng.integers(3, 7))
        for i in range(n):
            draw.pieslice(box, i * 360 / n, i * 360 / n + 180 / n, fill=_pick(rng, _BRIGHTS, 10.0))
    elif kind == 1:
        line = _pick(rng, (_BLACK, _WHITE), 10.0)
        wid = max(1, int(d * 0.04))
        draw.line((c - d / 2, c, c + d / 2, c), fill=line, width=wid)
        draw.arc((c - d * 0.3, c - d / 2, c + d * 0.3, c + d / 2), 0, 360, fill=line, width=wid)
    hl = _mix(base, _WHITE, 0.6)
    draw.ellipse((c - d * 0.3, c - d * 0.32, c - d * 0.1, c - d * 0.18), fill=hl)
    return img


def _sprite_cup(rng: np.random.Generator, length: int) -> Image.Image:
    """A mug seen from the side, with a handle."""
    h = float(length) * 0.75
    w = h * _uniform(rng, 0.65, 0.9)
    img, draw = _layer(w * 1.6, h * 1.2)
    cx, top = img.width / 2 - w * 0.15, img.height / 2 - h / 2
    body = _pick(rng, _BRIGHTS, 12.0)
    wid = max(1, int(w * 0.12))
    draw.ellipse(
        (cx + w * 0.3, top + h * 0.2, cx + w * 0.8, top + h * 0.75),
        outline=_shade(body, 0.8),
        width=wid,
    )
    taper = w * _uniform(rng, 0.0, 0.1)
    draw.polygon(
        [
            (cx - w / 2, top),
            (cx + w / 2, top),
            (cx + w / 2 - taper, top + h),
            (cx - w / 2 + taper, top + h),
        ],
        fill=body,
    )
    draw.rectangle(
        (cx - w * 0.35, top + h * 0.1, cx - w * 0.25, top + h * 0.9), fill=_mix(body, _WHITE, 0.35)
    )
    draw.ellipse((cx - w / 2, top - h * 0.08, cx + w / 2, top + h * 0.08), fill=_shade(body, 0.75))
    return img


def _sprite_flower(rng: np.random.Generator, length: int) -> Image.Image:
    """A flower: radial petals around a centre, on a stem."""
    d = float(length) * 0.6
    img, draw = _layer(d * 1.2, d * 2.0)
    c, cy = img.width / 2, d * 0.6
    stem = _jitter(rng, (60, 140, 50), 12.0)
    draw.line(
        (c, cy, c + _uniform(rng, -0.1, 0.1) * d, img.height),
        fill=stem,
        width=max(1, int(d * 0.06)),
    )
    draw.polygon(_ellipse_points(c + d * 0.15, cy + d * 0.8, d * 0.18, d * 0.07, -0.6), fill=stem)
    petal = _pick(rng, _BRIGHTS, 14.0)
    n = int(rng.integers(5, 11))
    phase = _uniform(rng, 0, math.pi)
    for i in range(n):
        a = phase + i * 2 * math.pi / n
        px, py = c + d * 0.27 * math.cos(a), cy + d * 0.27 * math.sin(a)
        draw.polygon(_ellipse_points(px, py, d * 0.24, d * 0.1, a), fill=petal)
    r = d * 0.13
    draw.ellipse(
        (c - r, cy - r, c + r, cy + r), fill=_pick(rng, ((240, 200, 40), (110, 70, 30)), 10)
    )
    return img


# ----------------------------------------------------------------------------- scene pieces


def _coords(size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinate grids ``(x, y)`` of shape ``(height, width)``."""
    w, h = size
    return np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))


def _two_tone(t: np.ndarray, a: Color, b: Color) -> Image.Image:
    """An RGB image that is ``a`` where ``t`` is 0 and ``b`` where it is 1 (blended between)."""
    mask = Image.fromarray((np.clip(t, 0.0, 1.0) * 255.0).astype(np.uint8))
    return Image.composite(Image.new("RGB", mask.size, b), Image.new("RGB", mask.size, a), mask)


def _pattern(
    rng: np.random.Generator, size: tuple[int, int], kind: str, period: float, a: Color, b: Color
) -> Image.Image:
    """Stripes, checks or wood grain with a random orientation."""
    x, y = _coords(size)
    ang = _uniform(rng, 0, math.pi)
    u = x * math.cos(ang) + y * math.sin(ang)
    v = -x * math.sin(ang) + y * math.cos(ang)
    if kind == "stripes":
        return _two_tone((u // period) % 2, a, b)
    if kind == "checks":
        return _two_tone(((u // period) + (v // period)) % 2, a, b)
    warp = np.sin(v / (period * _uniform(rng, 2, 5))) * period * _uniform(rng, 0.3, 1.2)
    t = 0.5 + 0.5 * np.sin((u + warp) * (2 * math.pi / period))
    return _two_tone(t * t, a, b)


def _background(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    """A table/backdrop: plain, gradient, tablecloth, wood grain or blotchy texture."""
    kind = int(rng.integers(6))
    base = _random_color(rng) if rng.random() < 0.5 else _pick(rng, _CLOTH, 25.0)
    if kind == 0:
        return Image.new("RGB", size, base)
    if kind == 1:
        x, y = _coords(size)
        ang = _uniform(rng, 0, 2 * math.pi)
        t = x * math.cos(ang) + y * math.sin(ang)
        t = (t - t.min()) / max(1e-6, float(t.max() - t.min()))
        return _two_tone(t, base, _random_color(rng))
    if kind in (2, 3):
        light = _jitter(rng, (236, 232, 224), 10.0)
        period = min(size) * _uniform(rng, 0.07, 0.2)
        return _pattern(rng, size, "checks" if kind == 2 else "stripes", period, base, light)
    if kind == 4:
        wood = _pick(rng, ((150, 100, 60), (190, 140, 90), (110, 70, 40), (210, 180, 140)), 15.0)
        return _pattern(
            rng, size, "wood", min(size) * _uniform(rng, 0.05, 0.15), wood, _shade(wood, 0.75)
        )
    low = rng.uniform(-40, 40, (int(rng.integers(3, 7)), int(rng.integers(3, 7)), 3))
    blot = Image.fromarray(np.clip(np.asarray(base) + low, 0, 255).astype(np.uint8))
    return blot.resize(size, Image.BICUBIC)


def _bright_texture(rng: np.random.Generator, size: tuple[int, int], kind: str) -> Image.Image:
    """Fine, high-contrast stripes or checks in two bright colours (period 3%-8% of the shorter
    side): the source set's texture classes."""
    first, second = rng.permutation(len(_BRIGHTS))[:2]
    a, b = _jitter(rng, _BRIGHTS[int(first)], 20.0), _jitter(rng, _BRIGHTS[int(second)], 20.0)
    return _pattern(rng, size, kind, min(size) * _uniform(rng, 0.03, 0.08), a, b)


def _texture_background(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    """The shifted test set's backdrop: a bright texture (:func:`_bright_texture`), finer and
    more contrasted than any table or cloth of :func:`_background`."""
    return _bright_texture(rng, size, "stripes" if rng.random() < 0.5 else "checks")


def _draw_clutter(canvas: Image.Image, rng: np.random.Generator) -> None:
    """A few small unrelated things on the table: cups, napkins, dishes, cutlery."""
    draw = ImageDraw.Draw(canvas)
    w, h = canvas.size
    m = min(w, h)
    for _ in range(int(rng.choice([0, 0, 1, 1, 2, 3]))):
        x, y = _uniform(rng, -0.05, 1.05) * w, _uniform(rng, -0.05, 1.05) * h
        r = m * _uniform(rng, 0.06, 0.16)
        kind = int(rng.integers(4))
        if kind == 0:  # cup seen from above
            draw.ellipse((x - r, y - r, x + r, y + r), fill=_random_color(rng))
            inner = _pick(rng, ((90, 50, 30), (240, 236, 226), (160, 100, 60)), 10.0)
            draw.ellipse((x - r * 0.8, y - r * 0.8, x + r * 0.8, y + r * 0.8), fill=inner)
        elif kind == 1:  # napkin
            pts = _ellipse_points(x, y, r * 1.4, r * 1.4, _uniform(rng, 0, math.pi / 2), 4)
            draw.polygon(pts, fill=_jitter(rng, (240, 238, 230), 12.0))
        elif kind == 2:  # small dish or sauce bowl
            draw.ellipse((x - r, y - r * 0.8, x + r, y + r * 0.8), fill=_random_color(rng))
            draw.ellipse(
                (x - r * 0.6, y - r * 0.45, x + r * 0.6, y + r * 0.45),
                fill=_pick(rng, (*_SAUCES, (120, 80, 50)), 10.0),
            )
        else:  # knife or spoon
            a = _uniform(rng, 0, math.pi)
            dx, dy = r * 2.2 * math.cos(a), r * 2.2 * math.sin(a)
            draw.line(
                (x - dx, y - dy, x + dx, y + dy),
                fill=_jitter(rng, (190, 192, 198), 15.0),
                width=max(1, int(m * 0.025)),
            )


def _draw_plate(
    canvas: Image.Image, rng: np.random.Generator, cx: float, cy: float, r: float
) -> None:
    """A round/oval plate or a paper tray centred under the food."""
    draw = ImageDraw.Draw(canvas)
    ry = r * _uniform(rng, 0.6, 1.0)
    if rng.random() < 0.25:  # paper tray
        rim = _pick(rng, ((200, 40, 40), (240, 240, 236), (60, 100, 170)), 10.0)
        angle = _uniform(rng, 0, math.pi)
        draw.polygon(_ellipse_points(cx, cy, r * 1.1, ry * 1.1, angle, 4), fill=rim)
        draw.polygon(_ellipse_points(cx, cy, r * 0.9, ry * 0.9, angle, 4), fill=_shade(rim, 0.9))
        return
    plate = _jitter(rng, (240, 240, 236), 12.0) if rng.random() < 0.7 else _random_color(rng)
    draw.ellipse((cx - r, cy - ry, cx + r, cy + ry), fill=_shade(plate, 0.88))
    draw.ellipse((cx - r * 0.8, cy - ry * 0.8, cx + r * 0.8, cy + ry * 0.8), fill=plate)


def _finish_sprite(sprite: Image.Image, angle: float) -> Image.Image:
    """Rotate a supersampled sprite and reduce it to its final size (premultiplied alpha).

    Nearest-neighbour rotation is enough: the ``_SUPERSAMPLING``-fold box reduction anti-aliases it.
    """
    rotated = sprite.convert("RGBa").rotate(angle, resample=Image.NEAREST, expand=True)
    return rotated.reduce(_SUPERSAMPLING).convert("RGBA")


def _paste(
    canvas: Image.Image, sprite: Image.Image, cx: float, cy: float, rng: np.random.Generator
) -> None:
    """Paste a final-size RGBA sprite centred on ``(cx, cy)``, with a soft shadow."""
    x, y = round(cx - sprite.width / 2), round(cy - sprite.height / 2)
    alpha = sprite.getchannel("A")
    if rng.random() < 0.6:
        blur = max(1.0, min(sprite.size) * 0.04)
        strength = _uniform(rng, 0.25, 0.5)
        shadow = alpha.filter(ImageFilter.BoxBlur(blur)).point(lambda v: int(v * strength))
        off = max(1, int(min(sprite.size) * 0.05))
        canvas.paste(_BLACK, (x + off, y + off), shadow)
    canvas.paste(sprite, (x, y), alpha)


def _photo_finish(canvas: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Mild blur, white balance, contrast/brightness jitter and sensor noise."""
    if rng.random() < 0.4:
        canvas = canvas.filter(
            ImageFilter.GaussianBlur(_uniform(rng, 0.3, 0.8) * min(canvas.size) / 128)
        )
    gain = rng.uniform(0.9, 1.1, 3) * _uniform(rng, 0.8, 1.15)
    levels = (np.arange(256.0) - 128.0) * _uniform(rng, 0.85, 1.15) + 128.0
    lut = np.clip(gain[:, None] * levels[None, :], 0, 255).astype(np.uint8)
    canvas = canvas.point(lut.ravel().tolist())
    amp = int(rng.integers(1, 7))
    shape = (canvas.height, canvas.width, 3)
    noise = rng.integers(-amp, amp + 1, shape, dtype=np.int16)
    noise += rng.integers(-amp, amp + 1, shape, dtype=np.int16)
    arr = np.asarray(canvas, np.int16) + noise
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


# ----------------------------------------------------------------------------- scenes


def _object_length(rng: np.random.Generator, size: tuple[int, int], scale: float = 1.0) -> int:
    """Sprite length in supersampled pixels: 70%-100% of the shorter image side.

    The main object fills the frame as in most of the real hot dog photos; at 32 px, objects of
    40%-95% left a model trained from scratch at chance after 5 epochs (README, "The stand-in").
    """
    return max(8, int(min(size) * _uniform(rng, 0.7, 1.0) * scale * _SUPERSAMPLING))


def _position(rng: np.random.Generator, size: tuple[int, int]) -> tuple[float, float]:
    """Object centre, near the middle of the frame (the photographer's framing)."""
    return _uniform(rng, 0.4, 0.6) * size[0], _uniform(rng, 0.4, 0.6) * size[1]


def _scene(
    rng: np.random.Generator,
    size: tuple[int, int],
    drawer: SpriteDrawer,
    companions: Sequence[SpriteDrawer],
    background: Backdrop = _background,
) -> Image.Image:
    """Background, optional plate, one or two main objects, optional companion food."""
    canvas = background(rng, size)
    two = rng.random() < 0.15
    scale = 0.65 if two else 1.0
    cx, cy = _position(rng, size)
    length = _object_length(rng, size, scale)
    if rng.random() < 0.35:
        _draw_plate(canvas, rng, cx, cy, length / _SUPERSAMPLING * _uniform(rng, 0.55, 0.7))
    items = [(drawer, cx, cy, length)]
    if two:
        off = min(size) * _uniform(rng, 0.2, 0.35)
        a = _uniform(rng, 0, 2 * math.pi)
        items.append((drawer, cx + off * math.cos(a), cy + off * math.sin(a), length))
        items[0] = (drawer, cx - off * math.cos(a), cy - off * math.sin(a), length)
    if companions and rng.random() < 0.15:
        comp = companions[int(rng.integers(len(companions)))]
        x, y = _uniform(rng, 0.1, 0.9) * size[0], _uniform(rng, 0.1, 0.9) * size[1]
        items.insert(0, (comp, x, y, _object_length(rng, size, 0.5)))
    for item_drawer, x, y, ln in items:
        sprite = _finish_sprite(item_drawer(rng, ln), _uniform(rng, 0, 360))
        _paste(canvas, sprite, x, y, rng)
    return _photo_finish(canvas, rng)


def _texture_scene(rng: np.random.Generator, size: tuple[int, int], kind: str) -> Image.Image:
    """A frame-filling, fine, high-contrast texture (a texture class of the source set)."""
    canvas = _bright_texture(rng, size, kind)
    _draw_clutter(canvas, rng)
    return _photo_finish(canvas, rng)


# ----------------------------------------------------------------------------- registries

_LOOKALIKES: tuple[SpriteDrawer, ...] = (
    _sprite_bun,
    _sprite_sausage,
    _sprite_sausage_and_bun,
    _sprite_banana,
    _sprite_baguette,
    _sprite_sandwich,
    _sprite_corn,
)
_OTHER_FOODS: tuple[SpriteDrawer, ...] = (
    _sprite_burger,
    _sprite_pizza,
    _sprite_donut,
    _sprite_fries,
    _sprite_taco,
    _sprite_carrot,
)
_SOURCE_SPRITES = MappingProxyType(
    {
        "hotdog": _sprite_hotdog,
        "burger": _sprite_burger,
        "pizza": _sprite_pizza,
        "donut": _sprite_donut,
        "banana": _sprite_banana,
        "baguette": _sprite_baguette,
        "sausage": _sprite_sausage,
        "bun": _sprite_bun,
        "corn": _sprite_corn,
        "carrot": _sprite_carrot,
        "fries": _sprite_fries,
        "sandwich": _sprite_sandwich,
        "taco": _sprite_taco,
        "ball": _sprite_ball,
        "cup": _sprite_cup,
        "flower": _sprite_flower,
    }
)
_SOURCE_TEXTURES = MappingProxyType({"striped-texture": "stripes", "checker-texture": "checks"})

SOURCE_CLASSES: tuple[str, ...] = (*_SOURCE_SPRITES, *_SOURCE_TEXTURES)
TARGET_BACKGROUNDS: Mapping[str, Backdrop] = MappingProxyType(
    {"table": _background, "texture": _texture_background}
)


def _check(label: str, valid: tuple[str, ...]) -> None:
    if label not in valid:
        raise ValueError(f"unknown label {label!r}; valid labels: {', '.join(valid)}")


def _check_size(size: tuple[int, int]) -> tuple[int, int]:
    w, h = (int(v) for v in size)
    if w < 8 or h < 8:
        raise ValueError(f"size must be at least 8x8, got {size!r}")
    return w, h


def draw_target(
    label: str, rng: np.random.Generator, size: tuple[int, int], background: str = "table"
) -> Image.Image:
    """Draw one image of the target set (``"hotdog"`` or ``"not-hotdog"``).

    ``size`` is ``(width, height)``; the result is an RGB image of exactly that size, fully
    determined by the state of ``rng``. ``background`` is one of :data:`TARGET_BACKGROUNDS`:
    ``"table"``, the training and test images' tables and cloths; ``"texture"``, the shifted
    test set's fine bright stripes and checks (the same foods, plates and framing).
    """
    _check(label, TARGET_CLASSES)
    if background not in TARGET_BACKGROUNDS:
        raise ValueError(
            f"unknown background {background!r}; valid: {', '.join(TARGET_BACKGROUNDS)}"
        )
    size = _check_size(size)
    backdrop, others = TARGET_BACKGROUNDS[background], _OTHER_FOODS
    if label == "hotdog":
        return _scene(rng, size, _sprite_hotdog, others, backdrop)
    pool = _LOOKALIKES if rng.random() < 0.5 else others
    return _scene(rng, size, pool[int(rng.integers(len(pool)))], others, backdrop)


def draw_source(label: str, rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    """Draw one image of the source set (one of ``SOURCE_CLASSES``).

    ``size`` is ``(width, height)``; the result is an RGB image of exactly that size, fully
    determined by the state of ``rng``.
    """
    _check(label, SOURCE_CLASSES)
    size = _check_size(size)
    if label in _SOURCE_TEXTURES:
        return _texture_scene(rng, size, _SOURCE_TEXTURES[label])
    return _scene(rng, size, _SOURCE_SPRITES[label], _OTHER_FOODS)
