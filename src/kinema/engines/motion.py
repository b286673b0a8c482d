"""The ``motion`` engine: camera moves over a still picture, on the CPU, with no weights.

It is the embedded default: every model id can be served by it on any machine. The input
picture COVERS the output frame: it is scaled until it fills the frame and the overflow is
cropped evenly from both sides (centre crop). At ``t = 0`` the camera rests, so frame 0 is
exactly that fitted picture; the move chosen from the prompt (see ``camera``) then eases
in and out. A first-last request cross-dissolves into the last picture, which arrives at
its own rest pose on the last frame. Without an input picture the engine paints one from
the prompt (``paint_first_frame``).

Frames are rendered lazily, one at a time, with sub-pixel affine resampling from a canvas
prepared once per clip (the picture at the resolution the move needs, plus a blurred,
mirrored margin when the move reveals more than the picture holds). The encoder asks for
YUV 4:2:0 planes directly, which costs half as much as rendering RGB and converting it.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any, get_args

import numpy as np
from PIL import Image, ImageFilter

from kinema.engines.camera import CameraMove, MoveKind, Pose, camera_move, choose_camera, ease
from kinema.errors import EngineError, JobCancelled
from kinema.media.audio import build_soundtrack, speech_sample_rate
from kinema.media.encode import Yuv420Frame, rgb_to_yuv420p
from kinema.types import CancelCheck, Clip, EngineRequest, ProgressCallback

__all__ = ["MotionEngine", "paint_first_frame"]

_RESAMPLING = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}
_MARGIN_BLUR = 0.03  # blur radius of the synthesised margin, fraction of the canvas side
_MARGIN_FEATHER = 0.02  # width of the seam between picture and margin, fraction of the side
_ROUNDING_PX = 0.01  # viewport overshoot below this is float noise, not a need for margin


class MotionEngine:
    """Camera moves over the input picture (or a painted one), plus a spoken soundtrack.

    Options (from the catalog, or per request in ``EngineRequest.options``):
    ``camera`` forces a move kind (``"static"``, ``"pan_left"``...) whatever the prompt
    says; ``resample`` is ``"bilinear"`` (default, fastest) or ``"bicubic"``.
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
        if is_cancelled():
            raise JobCancelled("cancelled before rendering started")
        width, height, count = request.width, request.height, request.num_frames
        if width % 2 or height % 2 or width <= 0 or height <= 0 or count <= 0:
            raise EngineError(f"cannot render {count} frames of {width}x{height}")
        options = {**self._options, **request.options}
        resample = _option(options, "resample", _RESAMPLING, "bilinear")

        # 1. The move, and the pose of the camera on each frame.
        move = _camera_for(request.prompt, request.seed, options.get("camera"))
        first = request.image or paint_first_frame(request.prompt, width, height, request.seed)
        first = first.convert("RGB")
        times = [index / max(count - 1, 1) for index in range(count)]
        room = _room(first.size, width, height)
        poses = [move.pose(t, width, height, room) for t in times]

        # 2. Canvases: the pictures at the scale the move needs, with margin where it must.
        shots = [_Shot(_Canvas.build(first, width, height, poses), poses)]
        if request.last_image is not None:
            last_poses = [pose.relative_to(poses[-1]) for pose in poses]
            last = _Canvas.build(request.last_image.convert("RGB"), width, height, last_poses)
            shots.append(_Shot(last, last_poses))

        # 3. Sound, computed now: the encoder needs the whole track up front.
        audio = None
        if request.generate_audio:
            audio = build_soundtrack(request.prompt, request.duration_s, request.seed)

        # 4. Frames, rendered as the encoder asks for them.
        frames = _MotionFrames(
            shots=shots,
            mix=[ease(t) for t in times] if len(shots) > 1 else [0.0] * count,
            size=(width, height),
            resample=resample,
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


def _room(size: tuple[int, int], width: int, height: int) -> tuple[float, float]:
    """The picture's size in output pixels once scaled to cover the frame."""
    scale = max(width / size[0], height / size[1])
    return size[0] * scale, size[1] * scale


# --- rendering ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Canvas:
    """A picture ready to render: canvas pixels per output pixel, and where rest sits."""

    rgb: Image.Image
    scale: tuple[float, float]  # canvas pixels per output pixel, x and y
    centre: tuple[float, float]  # canvas coordinates of the rest frame's centre

    @classmethod
    def build(cls, picture: Image.Image, width: int, height: int, poses: list[Pose]) -> _Canvas:
        room_w, room_h = _room(picture.size, width, height)
        # Keep as much of the picture's own detail as the closest pose can show.
        native = picture.size[0] / room_w
        density = min(max(native, 1.0), max(1.0, max(pose.zoom for pose in poses)))
        size = (max(1, round(room_w * density)), max(1, round(room_h * density)))
        if size != picture.size:
            shrinking = size[0] < picture.size[0]
            filter_ = Image.Resampling.LANCZOS if shrinking else Image.Resampling.BICUBIC
            picture = picture.resize(size, filter_)
        scale = (size[0] / room_w, size[1] / room_h)
        reach = [pose.half_extent(width, height) for pose in poses]
        need_x = max(x for x, _ in reach) - room_w / 2
        need_y = max(y for _, y in reach) - room_h / 2
        margin = (
            math.ceil(need_x * scale[0]) + 2 if need_x > _ROUNDING_PX else 0,
            math.ceil(need_y * scale[1]) + 2 if need_y > _ROUNDING_PX else 0,
        )
        if margin != (0, 0):
            picture = _extend(picture, margin)
        centre = (margin[0] + size[0] / 2, margin[1] + size[1] / 2)
        return cls(picture, scale, centre)

    @functools.cached_property
    def planes(self) -> tuple[Image.Image, Image.Image, Image.Image]:
        """The canvas as BT.709 Y, Cb and Cr planes (chroma at half resolution)."""
        pixels = np.asarray(self.rgb)
        odd = ((0, pixels.shape[0] % 2), (0, pixels.shape[1] % 2), (0, 0))
        y, cb, cr = rgb_to_yuv420p(np.pad(pixels, odd, mode="edge"))  # 4:2:0 needs even sides
        return Image.fromarray(y, "L"), Image.fromarray(cb, "L"), Image.fromarray(cr, "L")

    def render(
        self,
        plane: Image.Image,
        size: tuple[int, int],
        frame: tuple[int, int],
        pose: Pose,
        resample: Image.Resampling,
    ) -> Image.Image:
        """Render ``plane`` (the canvas, or one of its planes) as seen from ``pose``.

        ``size`` is the output size of this plane and ``frame`` the output frame size,
        so chroma planes (half of each) use the same pose as luma.
        """
        ratio = size[0] / frame[0]  # 1 for full-resolution planes, 0.5 for chroma
        unit_x, unit_y = self.scale[0] * ratio, self.scale[1] * ratio
        centre_x, centre_y = self.centre[0] * ratio, self.centre[1] * ratio
        half_w, half_h = frame[0] / (2 * pose.zoom), frame[1] / (2 * pose.zoom)
        if pose.angle == 0.0:
            box = (
                max(0.0, centre_x + unit_x * (pose.x - half_w)),
                max(0.0, centre_y + unit_y * (pose.y - half_h)),
                min(float(plane.width), centre_x + unit_x * (pose.x + half_w)),
                min(float(plane.height), centre_y + unit_y * (pose.y + half_h)),
            )
            return plane.resize(size, resample, box=box)
        # Output pixel centre (i + 0.5, j + 0.5) maps to the canvas through the pose.
        cos, sin = math.cos(math.radians(pose.angle)), math.sin(math.radians(pose.angle))
        step = 1.0 / (pose.zoom * ratio)
        coefficients = (
            unit_x * cos * step,
            -unit_x * sin * step,
            centre_x + unit_x * (pose.x - cos * half_w + sin * half_h),
            unit_y * sin * step,
            unit_y * cos * step,
            centre_y + unit_y * (pose.y - sin * half_w - cos * half_h),
        )
        return plane.transform(size, Image.Transform.AFFINE, coefficients, resample=resample)


def _extend(picture: Image.Image, margin: tuple[int, int]) -> Image.Image:
    """Surround the picture with a blurred mirror of itself, blended in over a soft seam."""
    pad_x = min(margin[0], picture.width - 1)
    pad_y = min(margin[1], picture.height - 1)
    pixels = np.asarray(picture)
    mirrored = np.pad(pixels, ((pad_y, pad_y), (pad_x, pad_x), (0, 0)), mode="symmetric")
    if (pad_x, pad_y) != margin:  # a margin wider than the picture: repeat the edge beyond
        extra = ((margin[1] - pad_y,) * 2, (margin[0] - pad_x,) * 2, (0, 0))
        mirrored = np.pad(mirrored, extra, mode="edge")
    sharp = Image.fromarray(mirrored, "RGB")
    side = max(picture.size)
    blurred = sharp.filter(ImageFilter.GaussianBlur(max(1.0, _MARGIN_BLUR * side)))
    # Distance outside the picture, in pixels, ramps the blur in over the feather width.
    xs = np.arange(sharp.width, dtype=np.float32)
    ys = np.arange(sharp.height, dtype=np.float32)
    out_x = np.maximum(margin[0] - xs, xs - (margin[0] + picture.width - 1))
    out_y = np.maximum(margin[1] - ys, ys - (margin[1] + picture.height - 1))
    outside = np.maximum(out_x[np.newaxis, :], out_y[:, np.newaxis]).clip(0, None)
    feather = max(1.0, _MARGIN_FEATHER * side)
    mask = (np.clip(outside / feather, 0.0, 1.0) * 255).astype(np.uint8)
    return Image.composite(blurred, sharp, Image.fromarray(mask, "L"))


@dataclass(frozen=True)
class _Shot:
    """One picture of the clip and the camera pose on each frame."""

    canvas: _Canvas
    poses: list[Pose]


class _MotionFrames:
    """The frames of one clip, rendered on demand as RGB or as YUV 4:2:0 planes.

    Before each frame the job's cancel flag is checked; after it, progress is reported.
    """

    def __init__(
        self,
        *,
        shots: list[_Shot],
        mix: list[float],
        size: tuple[int, int],
        resample: Image.Resampling,
        on_progress: ProgressCallback,
        is_cancelled: CancelCheck,
    ) -> None:
        self._shots = shots
        self._mix = mix  # weight of the last picture on each frame (0 without one)
        self._size = size
        self._resample = resample
        self._on_progress = on_progress
        self._is_cancelled = is_cancelled

    def __len__(self) -> int:
        return len(self._mix)

    def __iter__(self) -> Iterator[np.ndarray]:
        for (picture,) in self._layers(lambda canvas: (canvas.rgb,), (self._size,)):
            yield np.asarray(picture)

    def iter_yuv420p(self) -> Iterator[Yuv420Frame]:
        width, height = self._size
        sizes = ((width, height), (width // 2, height // 2), (width // 2, height // 2))
        for y, cb, cr in self._layers(lambda canvas: canvas.planes, sizes):
            yield np.asarray(y), np.asarray(cb), np.asarray(cr)

    def _layers(
        self,
        planes_of: Any,
        sizes: tuple[tuple[int, int], ...],
    ) -> Iterator[tuple[Image.Image, ...]]:
        count = len(self._mix)
        previous_key: object = None
        rendered: tuple[Image.Image, ...] = ()
        for index in range(count):
            if self._is_cancelled():
                raise JobCancelled(f"cancelled at frame {index} of {count}")
            mix = self._mix[index]
            key = (mix, *(shot.poses[index] for shot in self._shots))
            if key != previous_key:  # a still camera renders once
                rendered = self._render(planes_of, sizes, index, mix)
                previous_key = key
            self._on_progress((index + 1) / count)
            yield rendered

    def _render(
        self, planes_of: Any, sizes: tuple[tuple[int, int], ...], index: int, mix: float
    ) -> tuple[Image.Image, ...]:
        visible = [
            (shot, weight)
            for shot, weight in zip(self._shots, (1.0 - mix, mix), strict=False)
            if weight > 0.0
        ]
        layers: list[tuple[Image.Image, ...]] = []
        for shot, _ in visible:
            pose = shot.poses[index]
            layers.append(
                tuple(
                    shot.canvas.render(plane, size, self._size, pose, self._resample)
                    for plane, size in zip(planes_of(shot.canvas), sizes, strict=True)
                )
            )
        if len(layers) == 1:
            return layers[0]
        return tuple(Image.blend(a, b, mix) for a, b in zip(*layers, strict=True))


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
        (r"\b(?:mountains?|peaks?|alps|alpine|cliffs?)\b", "peaks", (112, 122, 144), (58, 68, 82)),
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
        ridge = _ridge(rng, xs[0], ground.style, horizon, layer)
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
