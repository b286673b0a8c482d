"""The ``motion`` engine: camera moves over a still picture, on the CPU, with no weights.

It is the embedded default: every model id can be served by it on any machine.

Crop policy: the input picture COVERS the output frame. It is scaled, keeping its aspect,
until it fills the frame, and the overflow is cropped evenly from both sides (a centre
crop, as ``PIL.ImageOps.fit(picture, size, centering=(0.5, 0.5))``). At ``t = 0`` the
camera rests, so frame 0 is exactly that fitted picture; the move chosen from the prompt
(see ``camera``) then eases in and out. A first-last request cross-dissolves into the last
picture, fitted the same way, which arrives at its own rest pose on the last frame.
Without an input picture the engine paints one from the prompt (``paint_first_frame``).

Frames are rendered lazily, one at a time, so memory stays flat even for 8 s of 4k. The
encoder asks for YUV 4:2:0 planes directly, which costs half as much as rendering RGB and
converting it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any, get_args

import cv2
import numpy as np
from PIL import Image

from kinema.engines.camera import (
    CameraMove,
    Canvas,
    MoveKind,
    Pose,
    camera_move,
    choose_camera,
    cover_size,
    ease,
)
from kinema.errors import EngineError, JobCancelled
from kinema.media.audio import build_soundtrack, speech_sample_rate
from kinema.media.encode import Yuv420Frame
from kinema.types import CancelCheck, Clip, EngineRequest, ProgressCallback

__all__ = ["MotionEngine", "paint_first_frame"]

_INTERPOLATION = {"bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC}


class MotionEngine:
    """Camera moves over the input picture (or a painted one), plus a spoken soundtrack.

    Options (from the catalog, or per request in ``EngineRequest.options``):
    ``camera`` forces a move kind (``"static"``, ``"pan_left"``...) whatever the prompt
    says; ``interpolation`` is ``"bilinear"`` (default, fastest) or ``"bicubic"``.
    ``negative_prompt`` and reference images are ignored.
    """

    name = "motion"

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        self._options = dict(options or {})

    def setup(self) -> None:
        speech_sample_rate()  # load espeak-ng now, so a broken install fails at startup

    def run(
        self, request: EngineRequest, on_progress: ProgressCallback, is_cancelled: CancelCheck
    ) -> Clip:
        """Prepare the clip; its frames render while ``Clip.frames`` is iterated.

        ``on_progress`` gets ``(i + 1) / num_frames`` as frame ``i`` is handed over, and
        ``is_cancelled`` is checked before each frame (``JobCancelled`` follows at once).
        """
        if is_cancelled():
            raise JobCancelled("cancelled before rendering started")
        width, height, count = request.width, request.height, request.num_frames
        if width % 2 or height % 2 or width <= 0 or height <= 0 or count <= 0:
            raise EngineError(f"cannot render {count} frames of {width}x{height}")
        options = {**self._options, **request.options}
        interpolation = _option(options, "interpolation", _INTERPOLATION, "bilinear")

        # 1. The move, and the pose of the camera on each frame.
        move = _camera_for(request.prompt, request.seed, options.get("camera"))
        first = request.image or paint_first_frame(request.prompt, width, height, request.seed)
        times = [index / max(count - 1, 1) for index in range(count)]
        room = cover_size(first.size, width, height)
        poses = [move.pose(t, width, height, room) for t in times]

        # 2. Canvases: the pictures at the scale the move needs, with margin where it must.
        shots = [_Shot(Canvas.build(first, width, height, poses), poses)]
        if request.last_image is not None:
            last_poses = [pose.relative_to(poses[-1]) for pose in poses]
            shots.append(
                _Shot(Canvas.build(request.last_image, width, height, last_poses), last_poses)
            )

        # 3. Sound, made now: the encoder needs the whole track before the first frame.
        audio = None
        if request.generate_audio:
            audio = build_soundtrack(request.prompt, request.duration_s, request.seed)

        # 4. Frames, rendered as the encoder asks for them.
        frames = _MotionFrames(
            shots=shots,
            mix=[ease(t) for t in times] if len(shots) > 1 else [0.0] * count,
            size=(width, height),
            interpolation=interpolation,
            on_progress=on_progress,
            is_cancelled=is_cancelled,
        )
        return Clip(width, height, request.fps, count, frames, audio)


def _option(options: dict[str, Any], key: str, choices: dict[str, Any], default: str) -> Any:
    value = str(options.get(key, default)).lower()
    if value not in choices:
        raise EngineError(f"motion engine option {key}={value!r}: use one of {sorted(choices)}")
    return choices[value]


def _camera_for(prompt: str, seed: int, forced: object) -> CameraMove:
    if forced is None:
        return choose_camera(prompt, seed)
    kinds = get_args(MoveKind)
    if forced not in kinds:
        raise EngineError(f"motion engine option camera={forced!r}: use one of {list(kinds)}")
    return camera_move(forced, seed)  # type: ignore[arg-type]


# --- frames ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Shot:
    """One picture of the clip and the camera pose on each frame."""

    canvas: Canvas
    poses: list[Pose]


class _MotionFrames:
    """The frames of one clip, rendered on demand as RGB or as YUV 4:2:0 planes.

    Before each frame the job's cancel flag is checked; as it is handed over, progress is
    reported. The arrays are read-only: a still camera hands over the same one again.
    """

    def __init__(
        self,
        *,
        shots: list[_Shot],
        mix: list[float],
        size: tuple[int, int],
        interpolation: int,
        on_progress: ProgressCallback,
        is_cancelled: CancelCheck,
    ) -> None:
        self._shots = shots
        self._mix = mix  # weight of the last picture on each frame (0 without one)
        self._size = size
        self._interpolation = interpolation
        self._on_progress = on_progress
        self._is_cancelled = is_cancelled

    def __len__(self) -> int:
        return len(self._mix)

    def __iter__(self) -> Iterator[np.ndarray]:
        for (rgb,) in self._frames(lambda canvas: (canvas.rgb,), (self._size,)):
            yield rgb

    def iter_yuv420p(self) -> Iterator[Yuv420Frame]:
        width, height = self._size
        chroma = (width // 2, height // 2)
        for planes in self._frames(lambda canvas: canvas.planes, (self._size, chroma, chroma)):
            y, cb, cr = planes
            yield y, cb, cr

    def _frames(
        self,
        planes_of: Callable[[Canvas], tuple[np.ndarray, ...]],
        sizes: tuple[tuple[int, int], ...],
    ) -> Iterator[tuple[np.ndarray, ...]]:
        count = len(self._mix)
        previous_key: object = None
        rendered: tuple[np.ndarray, ...] = ()
        for index in range(count):
            if self._is_cancelled():
                raise JobCancelled(f"cancelled at frame {index} of {count}")
            mix = self._mix[index]
            key = (mix, *(shot.poses[index] for shot in self._shots))
            if key != previous_key:  # a still camera renders once
                rendered = self._render(planes_of, sizes, index, mix)
                for plane in rendered:
                    plane.flags.writeable = False
                previous_key = key
            self._on_progress((index + 1) / count)
            yield rendered

    def _render(
        self,
        planes_of: Callable[[Canvas], tuple[np.ndarray, ...]],
        sizes: tuple[tuple[int, int], ...],
        index: int,
        mix: float,
    ) -> tuple[np.ndarray, ...]:
        layers = [
            tuple(
                shot.canvas.render(plane, size, self._size, shot.poses[index], self._interpolation)
                for plane, size in zip(planes_of(shot.canvas), sizes, strict=True)
            )
            for shot, weight in zip(self._shots, (1.0 - mix, mix), strict=False)
            if weight > 0.0
        ]
        if len(layers) == 1:
            return layers[0]
        first, last = layers
        return tuple(
            cv2.addWeighted(a, 1.0 - mix, b, mix, 0.0) for a, b in zip(first, last, strict=True)
        )


# --- painting -------------------------------------------------------------------------

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

    The rule, so the same prompt and seed always give the same picture: time-of-day words
    pick the sky (night: dark blue with stars and a moon; sunset or dusk: purple to orange
    with a low sun; sunrise or dawn: blue to peach; otherwise a blue day sky with a high
    sun and soft clouds), and fog, rain or overcast words grey it. The first scene word
    picks the ground (sea, lake or beach: water with ripples and the light's reflection;
    city: a skyline with lit windows; forest: hills with pine silhouettes; desert: sand
    hills; snow or mountains: peaks; otherwise meadow hills), in three layers that fade
    into the haze of the horizon. The first colour word (red, blue, gold...) tints the
    horizon and the light. The rest (where the horizon and the light sit, the shape of
    the hills, the texture) comes from the prompt and ``seed``.
    """
    digest = hashlib.sha256(f"{seed}\x00{prompt}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    words = prompt.lower()
    sky = next((sky for pattern, sky in _SKIES if pattern.search(words)), _DAY)
    ground = next((ground for pattern, ground in _GROUNDS if pattern.search(words)), _MEADOW)
    colour = _COLOUR_WORD.search(words)
    if colour is not None:
        accent = np.array(_COLOURS[colour.group(1)])
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
    for layer in range(3):
        depth = layer / 2  # 0 far .. 1 near
        colour_ = _lerp(ground.far, ground.near, depth) * lit
        colour_ = colour_ * (0.55 + 0.45 * depth) + haze * lit * 0.45 * (1 - depth)
        if ground.style == "water" and layer > 0:
            break  # only a distant shore: the water itself comes next
        ridge = _ridge(
            rng, xs[0], shore if ground.style == "water" else ground.style, horizon, layer
        )
        inside = np.clip((ys - ridge[np.newaxis, :]) * h + 0.5, 0.0, 1.0)[..., np.newaxis]
        shade = 1.0 - 0.25 * np.clip((ys - horizon) / (1 - horizon), 0, 1)[..., np.newaxis]
        canvas = canvas * (1 - inside) + colour_ * shade * inside
        if ground.style == "forest" and layer == 2:
            canvas = _trees(rng, canvas, xs[0], ys[:, 0], ridge, colour_ * 0.6)
        if ground.style == "city" and layer == 0:
            canvas = _skyline(rng, canvas, xs[0], ys[:, 0], horizon, colour_, sky.daylight)
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
