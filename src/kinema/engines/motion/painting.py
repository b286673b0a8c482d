"""A first frame painted from the prompt, for text-to-video requests on the motion engine.

The picture is a deterministic procedural scene seeded by the prompt and seed: a sky
gradient (day, sunset, night with stars, overcast) over ground chosen from scene words
(hills, mountains, forest, city skyline, water), with colour words in the prompt tinting
it, soft value noise for texture, and a sun or moon disc, so a camera move over it reads.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image

from kinema.chinese import in_english

__all__ = ["paint_first_frame"]

RGB = tuple[float, float, float]


@dataclass(frozen=True)
class _Sky:
    top: RGB
    horizon: RGB
    light: RGB  # sun or moon
    light_height: float  # 0 on the horizon, 1 at the top of the frame
    daylight: float  # how lit the ground is
    stars: bool = False
    clouds: bool = True


_SKIES: tuple[tuple[re.Pattern[str], _Sky], ...] = (
    (
        re.compile(r"\b(?:night\w*|midnight|stars?|starry|moon\w*|nocturnal)\b"),
        _Sky((8, 12, 35), (34, 44, 86), (236, 236, 214), 0.62, 0.3, stars=True, clouds=False),
    ),
    (
        re.compile(r"\b(?:sunset|dusk|golden hour|evening|twilight)\b"),
        _Sky((58, 32, 95), (255, 140, 66), (255, 206, 110), 0.12, 0.7),
    ),
    (
        re.compile(r"\b(?:sunrise|dawn|daybreak|morning)\b"),
        _Sky((92, 124, 196), (255, 184, 150), (255, 232, 176), 0.16, 0.85),
    ),
)
_DAY = _Sky((64, 124, 208), (192, 222, 246), (255, 250, 226), 0.72, 1.0)
_OVERCAST = re.compile(r"\b(?:fog\w*|mist\w*|cloudy|overcast|rain\w*|storm\w*|grey|gray)\b")


@dataclass(frozen=True)
class _Ground:
    style: str  # water | city | forest | hills | peaks
    far: RGB
    near: RGB


_MOUNTAINS = re.compile(r"\b(?:mountains?|peaks?|alps|alpine|cliffs?)\b")
_GROUNDS: tuple[tuple[re.Pattern[str], _Ground], ...] = tuple(
    (re.compile(pattern), _Ground(style, far, near))
    for pattern, style, far, near in (
        (
            r"\b(?:ocean|sea|lake|beach|river|waves?|coast\w*|shore|harbou?r)\b",
            "water",
            (42, 84, 124),
            (12, 42, 72),
        ),
        (
            r"\b(?:city|street|skyline|buildings?|urban|downtown|neon|town)\b",
            "city",
            (44, 48, 64),
            (22, 24, 32),
        ),
        (
            r"\b(?:forest|jungle|trees?|woods?|woodland|pines?)\b",
            "forest",
            (70, 118, 78),
            (20, 62, 32),
        ),
        (r"\b(?:desert|dunes?|sand\w*|canyon)\b", "hills", (214, 172, 112), (168, 118, 68)),
        (
            r"\b(?:snow\w*|winter|ice|icy|glacier|arctic)\b",
            "peaks",
            (222, 230, 242),
            (186, 202, 224),
        ),
        (_MOUNTAINS.pattern, "peaks", (112, 122, 144), (58, 68, 82)),
    )
)
_MEADOW = _Ground("hills", (124, 162, 82), (58, 108, 42))

_COLOURS: dict[str, RGB] = {
    "red": (220, 50, 47), "crimson": (200, 30, 60), "orange": (255, 140, 40),
    "yellow": (250, 215, 60), "gold": (240, 190, 70), "golden": (240, 190, 70),
    "green": (70, 170, 80), "teal": (30, 150, 150), "turquoise": (60, 200, 190),
    "blue": (50, 110, 220), "purple": (130, 70, 180), "violet": (140, 90, 210),
    "pink": (245, 130, 180), "magenta": (220, 60, 170), "white": (240, 240, 240),
}  # fmt: skip
_COLOUR_WORD = re.compile(r"\b(" + "|".join(_COLOURS) + r")\b")
_WORKING_SIDE = 960  # paint at this size, then scale: the picture is smooth anyway


def paint_first_frame(prompt: str, width: int, height: int, seed: int) -> Image.Image:
    """Paint a landscape for a prompt that came without a picture (text-to-video).

    The rule, so the same prompt and seed always give the same picture. Time-of-day words
    pick the sky, first match in this order: night (dark blue, stars, a moon), sunset or
    dusk (purple to orange, a low sun), sunrise or dawn (blue to peach); otherwise a blue
    day sky with a high sun and soft clouds. Fog, rain or overcast words grey it. Scene
    words pick the ground, first match in this order: sea, lake or beach (water with
    ripples and the light's reflection, below mountains if the prompt names some), city
    (a skyline with lit windows), forest (hills with pine silhouettes), desert (sand
    hills), snow, then mountains (peaks); otherwise meadow hills. The ground is three
    layers that fade into the haze of the horizon. The first colour word (red, blue,
    gold...) tints the horizon and the light. The rest (where the horizon and the light
    sit, the shape of the hills, the texture) comes from the prompt and ``seed``.
    """
    digest = hashlib.sha256(f"{seed}\x00{prompt}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    words = in_english(prompt).lower()  # Chinese scene words too
    sky = next((sky for pattern, sky in _SKIES if pattern.search(words)), _DAY)
    ground = next((ground for pattern, ground in _GROUNDS if pattern.search(words)), _MEADOW)
    colour_word = _COLOUR_WORD.search(words)
    if colour_word is not None:
        accent = np.array(_COLOURS[colour_word.group(1)])
        sky = replace(
            sky,
            horizon=tuple(0.65 * np.array(sky.horizon) + 0.35 * accent),
            light=tuple(0.5 * np.array(sky.light) + 0.5 * accent),
        )
    overcast = bool(_OVERCAST.search(words))
    shore = "peaks" if _MOUNTAINS.search(words) else "water"  # what rises beyond the water

    shrink = min(1.0, _WORKING_SIDE / max(width, height))
    w, h = max(8, round(width * shrink)), max(8, round(height * shrink))
    ys = (np.arange(h, dtype=np.float32)[:, np.newaxis] + 0.5) / h  # 0 at the top
    xs = (np.arange(w, dtype=np.float32)[np.newaxis, :] + 0.5) / w
    horizon = float(rng.uniform(0.52, 0.66))

    # 1. Sky: a gradient, the light with its glow, then stars or clouds.
    blend = np.clip(ys / horizon, 0.0, 1.0) ** 0.8
    canvas = _lerp(sky.top, sky.horizon, blend) + np.zeros((1, w, 1), np.float32)
    light_x = float(rng.uniform(0.2, 0.8))
    light_y = horizon * (1.0 - sky.light_height)
    distance = np.hypot((xs - light_x) * w / h, ys - light_y)  # in frame heights
    radius = 0.05
    glow = np.exp(-((distance / (radius * 5)) ** 2))[..., np.newaxis] * (0.25 if overcast else 0.55)
    canvas += glow * (np.array(sky.light) - canvas).clip(0, None)
    disc = np.clip((radius - distance) * h + 0.5, 0.0, 1.0)[..., np.newaxis]
    canvas = canvas * (1 - disc) + np.array(sky.light, np.float32) * disc
    if sky.stars:
        count = int(w * h * 0.0012)
        star_y = rng.integers(0, max(1, int(h * horizon)), count)
        star_x = rng.integers(0, w, count)
        canvas[star_y, star_x] = np.maximum(
            canvas[star_y, star_x], rng.uniform(150, 255, (count, 1))
        )
    if sky.clouds or overcast:
        cover = _value_noise(rng, (h, w), 5) * 0.6 + _value_noise(rng, (h, w), 13) * 0.4
        puffs = _smoothstep(0.55 if overcast else 0.62, 0.85, cover) * (ys < horizon)
        white = np.array((238, 240, 245), np.float32) * (0.8 + 0.2 * sky.daylight)
        canvas += (puffs * (0.75 if overcast else 0.6))[..., np.newaxis] * (white - canvas)
    if overcast:
        grey = canvas.mean(axis=2, keepdims=True)
        canvas = 0.4 * canvas + 0.6 * grey

    # 2. Ground: far to near, each layer hazier the further it is.
    haze = np.array(sky.horizon, np.float32)
    lit = 0.35 + 0.65 * sky.daylight
    for layer in range(1 if ground.style == "water" else 3):  # water: a distant shore only
        depth = layer / 2  # 0 far .. 1 near
        tone = _lerp(ground.far, ground.near, depth) * lit
        tone = tone * (0.55 + 0.45 * depth) + haze * lit * 0.45 * (1 - depth)
        ridge = _ridge(
            rng, xs[0], shore if ground.style == "water" else ground.style, horizon, layer
        )
        inside = np.clip((ys - ridge[np.newaxis, :]) * h + 0.5, 0.0, 1.0)[..., np.newaxis]
        shade = 1.0 - 0.25 * np.clip((ys - horizon) / (1 - horizon), 0, 1)[..., np.newaxis]
        canvas = canvas * (1 - inside) + tone * shade * inside
        if ground.style == "forest" and layer == 2:
            canvas = _trees(rng, canvas, xs[0], ys[:, 0], ridge, tone * 0.6)
        if ground.style == "city" and layer == 0:
            canvas = _skyline(rng, canvas, xs[0], ys[:, 0], horizon, tone, sky.daylight)
    if ground.style == "water":
        canvas = _water(rng, canvas, xs, ys, horizon, ground, sky, light_x, lit)

    # 3. Texture and a soft vignette, so the camera's motion reads on every part.
    canvas *= (0.94 + 0.12 * _value_noise(rng, (h, w), 24))[..., np.newaxis]
    vignette = 1.0 - 0.22 * ((xs - 0.5) ** 2 + (ys - 0.5) ** 2) * 2
    canvas *= vignette[..., np.newaxis]
    picture = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8), "RGB")
    return picture.resize((width, height), Image.Resampling.BICUBIC)


def _lerp(a: RGB, b: RGB, t: np.ndarray | float) -> np.ndarray:
    start, end = np.array(a, np.float32), np.array(b, np.float32)
    weight = np.asarray(t, np.float32)[..., np.newaxis]
    return start + (end - start) * weight


def _smoothstep(low: float, high: float, value: np.ndarray) -> np.ndarray:
    t = np.clip((value - low) / (high - low), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _value_noise(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> np.ndarray:
    """Smooth noise in [0, 1] with about ``cells`` bumps across the wider side."""
    h, w = shape
    grid = rng.random(
        (max(2, round(cells * h / max(h, w))) + 1, max(2, round(cells * w / max(h, w))) + 1)
    )
    field = Image.fromarray(grid.astype(np.float32), "F").resize((w, h), Image.Resampling.BICUBIC)
    return np.clip(np.asarray(field), 0.0, 1.0)


def _ridge(
    rng: np.random.Generator, xs: np.ndarray, style: str, horizon: float, layer: int
) -> np.ndarray:
    """The top edge of a ground layer, as a fraction of the height for each column."""
    base = horizon + 0.07 * layer * (1.4 if style == "peaks" else 1.0)
    height = {"peaks": 0.16, "city": 0.02, "water": 0.025}.get(style, 0.05) / (1 + layer)
    edge = np.zeros_like(xs)
    for octave in range(3):
        frequency = rng.uniform(1.0, 2.5) * 2**octave
        phase = rng.uniform(0, 1)
        if style == "peaks":  # triangle waves: sharp summits, straight slopes
            shaped = 1 - np.abs(2 * ((frequency * xs + phase) % 1.0) - 1)
        else:
            shaped = 0.5 + 0.5 * np.sin(2 * np.pi * (frequency * xs + phase))
        edge += shaped / 2**octave
    return base - height * edge


def _trees(
    rng: np.random.Generator,
    canvas: np.ndarray,
    xs: np.ndarray,
    ys: np.ndarray,
    ridge: np.ndarray,
    colour: np.ndarray,
) -> np.ndarray:
    h, w = canvas.shape[:2]
    for _ in range(int(rng.integers(14, 24))):
        centre = float(rng.uniform(0, 1))
        column = min(w - 1, int(centre * w))
        foot = float(ridge[column]) + 0.02
        tall = float(rng.uniform(0.08, 0.2))
        half_width = tall * 0.28 * h / w
        rise = np.clip((foot - ys) / tall, 0.0, 1.0)[:, np.newaxis]  # 0 at the foot, 1 at the tip
        inside = (np.abs(xs - centre)[np.newaxis, :] < half_width * (1 - rise)) & (ys <= foot)[
            :, np.newaxis
        ]
        canvas[inside] = colour
    return canvas


def _skyline(
    rng: np.random.Generator,
    canvas: np.ndarray,
    xs: np.ndarray,
    ys: np.ndarray,
    horizon: float,
    colour: np.ndarray,
    daylight: float,
) -> np.ndarray:
    h, w = canvas.shape[:2]
    left = 0.0
    while left < 1.0:
        wide = float(rng.uniform(0.03, 0.08))
        top = horizon - float(rng.uniform(0.05, 0.28))
        columns = (xs >= left) & (xs < left + wide - 0.004)
        rows = (ys >= top) & (ys < horizon + 0.01)
        block = rows[:, np.newaxis] & columns[np.newaxis, :]
        tone = colour * float(rng.uniform(0.8, 1.2))
        canvas[block] = tone
        if daylight < 0.9:  # lit windows at dusk and at night
            window_rows = rows & (((ys - top) * h) % 9 < 3)
            window_cols = columns & (((xs - left) * w) % 7 < 3)
            windows = window_rows[:, np.newaxis] & window_cols[np.newaxis, :]
            windows &= rng.random((h, w)) < 0.45
            canvas[windows] = (255, 214, 140)
        left += wide
    return canvas


def _water(
    rng: np.random.Generator,
    canvas: np.ndarray,
    xs: np.ndarray,
    ys: np.ndarray,
    horizon: float,
    ground: _Ground,
    sky: _Sky,
    light_x: float,
    lit: float,
) -> np.ndarray:
    depth = np.clip((ys - horizon) / (1 - horizon), 0.0, 1.0)
    below = (ys >= horizon).astype(np.float32)[..., np.newaxis]
    sea = _lerp(ground.far, ground.near, depth[:, 0])[:, np.newaxis, :] * lit
    sea = sea + 0.3 * np.array(sky.horizon, np.float32) * (1 - depth)[..., np.newaxis]
    phase = rng.uniform(0, 2 * np.pi)
    ripples = np.sin(
        2 * np.pi * 6 / (depth + 0.04) + phase + 3 * _value_noise(rng, canvas.shape[:2], 18)
    )
    sea = sea * (1 + 0.07 * ripples[..., np.newaxis])
    path = np.exp(-(((xs - light_x) / (0.02 + 0.12 * depth)) ** 2)) * np.clip(ripples, 0, 1)
    sea += (0.6 * path)[..., np.newaxis] * (np.array(sky.light, np.float32) - sea).clip(0, None)
    return canvas * (1 - below) + sea * below
