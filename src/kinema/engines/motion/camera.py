"""Camera moves for the motion engine: which move a prompt asks for, and where it is at t.

Geometry is in output pixels at the rest scale, origin at the centre of the rest frame
(the input picture fitted to cover the output). A pose is a viewport: its centre, its
magnification and its roll. At ``t = 0`` every move is at rest, so the first frame is the
fitted picture itself.

Moves stay inside the picture: lateral travel is a fraction of the room the picture
leaves around the (zoomed, rolled) viewport, so a pan on a picture with the same aspect as
the output is a pan with a creeping push-in, and one on a wider picture uses the real
margin. Pull-outs are the exception: they reveal an extended canvas around the picture
(``leaves_picture``), which ``Canvas`` synthesises.

``Canvas`` is what the camera films: the picture prepared once per clip, rendered for a
pose with one affine warp per plane (OpenCV: bilinear, sub-pixel, SIMD; about twice as
fast as Pillow's resize and five times its rotating transform, which matters at 1080p).
For the encoder it renders YUV 4:2:0 in two warps: luma, and Cb and Cr packed in one
four-channel plane (``packed_planes``).
"""

from __future__ import annotations

import functools
import math
import random
import re
from dataclasses import dataclass, replace
from typing import Literal

import cv2
import numpy as np
from PIL import Image, ImageFilter

from kinema.chinese import in_english
from kinema.media.encode import rgb_to_yuv420p

__all__ = [
    "CameraMove",
    "Canvas",
    "MoveKind",
    "Pose",
    "camera_move",
    "choose_camera",
    "cover_size",
    "ease",
]

MoveKind = Literal[
    "push_in",
    "pull_out",
    "pan_left",
    "pan_right",
    "tilt_up",
    "tilt_down",
    "dolly_in",
    "dolly_out",
    "orbit_left",
    "orbit_right",
    "static",
    "drift",
]


def ease(t: float) -> float:
    """Smoothstep: starts and stops with zero velocity."""
    t = min(1.0, max(0.0, t))
    return t * t * (3.0 - 2.0 * t)


@dataclass(frozen=True)
class Pose:
    """Where the camera looks: viewport centre, magnification and roll."""

    zoom: float = 1.0  # > 1 magnifies: the viewport is 1/zoom of the rest frame
    x: float = 0.0  # viewport centre, output pixels right of the rest centre
    y: float = 0.0  # viewport centre, output pixels below the rest centre
    angle: float = 0.0  # roll in degrees: the viewport turns clockwise over the picture

    def half_extent(self, width: int, height: int) -> tuple[float, float]:
        """How far the viewport reaches from the rest centre, horizontally and vertically."""
        cos, sin = abs(math.cos(math.radians(self.angle))), abs(math.sin(math.radians(self.angle)))
        half_w = (width * cos + height * sin) / (2 * self.zoom)
        half_h = (width * sin + height * cos) / (2 * self.zoom)
        return abs(self.x) + half_w, abs(self.y) + half_h

    def relative_to(self, end: Pose) -> Pose:
        """This pose seen from ``end``, so that ``end.relative_to(end)`` is the rest pose.

        Used for the last picture of a first-last clip: it moves with the camera and
        arrives at rest on the last frame.
        """
        turn = math.radians(-end.angle)
        dx, dy = self.x - end.x, self.y - end.y
        return Pose(
            zoom=self.zoom / end.zoom,
            x=end.zoom * (dx * math.cos(turn) - dy * math.sin(turn)),
            y=end.zoom * (dx * math.sin(turn) + dy * math.cos(turn)),
            angle=self.angle - end.angle,
        )


@dataclass(frozen=True)
class CameraMove:
    """A camera move over a whole clip, from rest (t=0) to its end pose (t=1)."""

    kind: MoveKind
    zoom: float = 1.0  # magnification reached at the end (< 1 pulls out)
    travel_x: float = 0.0  # end sideways travel, fraction of the room left (-1..1, + right)
    travel_y: float = 0.0  # end vertical travel, fraction of the room left (-1..1, + down)
    angle: float = 0.0  # end roll in degrees
    leaves_picture: bool = False  # may show the extended canvas around the picture

    def pose(self, t: float, width: int, height: int, room: tuple[float, float]) -> Pose:
        """The pose at ``t`` in [0, 1] for a ``width`` x ``height`` output.

        ``room`` is the size of the fitted picture in output pixels (at least the output
        size): lateral travel is measured against what it leaves around the viewport.
        """
        progress = ease(t)
        still = Pose(
            zoom=1.0 + (self.zoom - 1.0) * progress,
            angle=self.angle * progress,
        )
        half_w, half_h = still.half_extent(width, height)
        free_x, free_y = room[0] / 2 - half_w, room[1] / 2 - half_h
        if self.leaves_picture:
            free_x, free_y = abs(free_x), abs(free_y)
        return replace(
            still,
            x=self.travel_x * progress * max(0.0, free_x),
            y=self.travel_y * progress * max(0.0, free_y),
        )


# --- prompt -> move -------------------------------------------------------------------

_LEFT_RIGHT = r"\s+(?:to\s+)?(?:the\s+)?(?P<dir>left|right)(?:wards?)?\b"
_UP_DOWN = r"\s+(?P<dir>up|down)(?:wards?)?\b"

# Each cue maps a phrase to a family of moves; the earliest cue in the prompt wins, and at
# the same position the more specific one (listed first). Words with other meanings
# ("pan", "crane", "track") count only with a direction or a camera word beside them.
_CUES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (family, re.compile(pattern))
    for family, pattern in (
        (
            "static",
            r"\b(?:static|still|locked[\s-]?(?:off|down)|fixed|stationary|tripod)"
            r"[\s-](?:camera|shot|frame|wide shot|angle)\b"
            r"|\bcamera (?:is |stays |remains |holds )?(?:static|still|steady|fixed|locked)\b"
            r"|\bno camera (?:movement|motion)\b|\blocked[\s-]off\b",
        ),
        (
            "pull_out",
            r"\b(?:pull(?:s|ing)?[\s-]?(?:out|back|away)|zoom(?:s|ing)?[\s-]out|widens? out)\b",
        ),
        (
            "push_in",
            r"\b(?:push(?:es|ing)?[\s-]?in|zoom(?:s|ing)?(?:[\s-]in)?|close[sd]?[\s-]in"
            r"|mov(?:es|ing) closer|push(?:es|ing)? (?:toward|towards|forward))\b",
        ),
        ("dolly", r"\bdolly(?:ing|s)?(?:[\s-]+(?P<dir>in|out|forward|back|backwards?)\b)?"),
        ("pan", r"\b(?:pan|truck|track)(?:s|ning|ned|ing)?" + _LEFT_RIGHT),
        ("pan", r"\b(?:pans|panning|panned|(?:camera|slow|slowly|whip|gentle|smooth) pan)\b"),
        ("tilt", r"\b(?:tilt|crane|pedestal)(?:s|ing|ed)?" + _UP_DOWN),
        ("tilt", r"\b(?:tilts|tilting|tilted|(?:camera|slow|slowly|gentle|smooth) tilt)\b"),
        (
            "orbit",
            r"\b(?:orbit(?:s|ing)?|arc(?:s|ing)? (?:shot|around)|circl(?:es|ing) around"
            r"|parallax)\b(?:\s+(?:\w+\s+){0,3}?(?P<dir>left|right|clockwise"
            r"|counter-?clockwise|anti-?clockwise)\b)?",
        ),
    )
)


def choose_camera(prompt: str, seed: int) -> CameraMove:
    """Pick the camera move a prompt asks for; ``seed`` fills in what it leaves open.

    Recognised cues (in English, or their Chinese words: ``chinese``): push in / zoom in,
    pull out / zoom out, pan left|right, tilt up|down
    (also crane, pedestal), dolly in|out, orbit / arc / parallax, and a static or
    locked-off camera. Without a cue the camera makes a gentle push-in with a slight
    drift. The seed picks amplitudes within a small range, and the direction when the
    prompt names a move but not its direction; the same prompt and seed always give the
    same move.
    """
    text = in_english(prompt).lower()  # Chinese camera words too: 推近, 拉远, 向左平移...
    found: list[tuple[int, int, str, str | None]] = []
    for order, (family, pattern) in enumerate(_CUES):
        match = pattern.search(text)
        if match is not None:
            found.append((match.start(), order, family, match.groupdict().get("dir")))
    if not found:
        return _move("drift", None, random.Random(seed))
    _, _, family, direction = min(found)
    return _move(family, direction, random.Random(seed))


def camera_move(kind: MoveKind, seed: int) -> CameraMove:
    """The move of ``kind``, with the amplitude ``seed`` picks (for a move set by config)."""
    family, _, direction = kind.partition("_")
    if family in ("push", "pull"):
        family, direction = kind, ""
    return _move(family, direction or None, random.Random(seed))


def _move(family: str, direction: str | None, rng: random.Random) -> CameraMove:
    """The move of ``family``; ``rng`` picks the amplitude, and the direction if none."""
    amount = rng.random()  # 0..1: where in the move's amplitude range this clip sits
    side = rng.choice((-1.0, 1.0))
    if family == "drift":  # no cue: a gentle push-in that wanders a little
        return CameraMove(
            "drift",
            zoom=1.06 + 0.03 * amount,
            travel_x=0.25 * side,
            travel_y=0.15 * rng.choice((-1.0, 1.0)),
        )
    if family == "static":
        return CameraMove("static")
    if family == "push_in":
        return CameraMove("push_in", zoom=1.10 + 0.05 * amount)
    if family == "pull_out":
        return CameraMove("pull_out", zoom=1 / (1.10 + 0.05 * amount), leaves_picture=True)
    if family == "pan":
        sign = {"left": -1.0, "right": 1.0}.get(direction or "", side)
        return CameraMove(
            "pan_right" if sign > 0 else "pan_left", zoom=1.16 + 0.05 * amount, travel_x=sign
        )
    if family == "tilt":
        sign = {"up": -1.0, "down": 1.0}.get(direction or "", side)
        return CameraMove(
            "tilt_down" if sign > 0 else "tilt_up", zoom=1.16 + 0.05 * amount, travel_y=sign
        )
    if family == "dolly":
        if direction in ("out", "back", "backward", "backwards"):
            return CameraMove(
                "dolly_out",
                zoom=1 / (1.14 + 0.05 * amount),
                travel_y=0.35 * side,
                leaves_picture=True,
            )
        return CameraMove("dolly_in", zoom=1.16 + 0.05 * amount, travel_y=0.35 * side)
    if family != "orbit":
        raise ValueError(f"unknown camera move {family!r}")
    # a lateral move around the subject, with a slight push-in and a subtle roll
    sign = {"left": -1.0, "counterclockwise": -1.0, "anticlockwise": -1.0}.get(
        (direction or "").replace("-", ""), 1.0 if direction else side
    )
    return CameraMove(
        "orbit_right" if sign > 0 else "orbit_left",
        zoom=1.12 + 0.04 * amount,
        travel_x=0.85 * sign,
        angle=-1.5 * sign,
    )


# --- what the camera films ------------------------------------------------------------

_MARGIN_BLUR = 0.03  # blur radius of the synthesised margin, fraction of the canvas side
_MARGIN_FEATHER = 0.02  # width of the seam between picture and margin, fraction of the side
_ROUNDING_PX = 0.01  # viewport overshoot below this is float noise, not a need for margin


def cover_size(size: tuple[int, int], width: int, height: int) -> tuple[float, float]:
    """The size in output pixels of a picture scaled to cover a ``width`` x ``height`` frame."""
    scale = max(width / size[0], height / size[1])
    return size[0] * scale, size[1] * scale


@dataclass(frozen=True)
class Canvas:
    """A picture prepared for filming: pixels, their scale, and where the rest frame sits."""

    rgb: np.ndarray  # (h, w, 3) uint8: the picture, plus any synthesised margin
    scale: tuple[float, float]  # canvas pixels per output pixel, x and y
    centre: tuple[float, float]  # canvas coordinates of the rest frame's centre

    @classmethod
    def build(cls, picture: Image.Image, width: int, height: int, poses: list[Pose]) -> Canvas:
        """Prepare ``picture`` for a ``width`` x ``height`` clip filmed from ``poses``.

        The canvas keeps as much of the picture's own detail as the closest pose can show
        (never less than one canvas pixel per output pixel), and gets a margin only when
        a pose looks beyond the picture.
        """
        picture = picture.convert("RGB")
        room_w, room_h = cover_size(picture.size, width, height)
        native = picture.size[0] / room_w
        density = min(max(native, 1.0), max(1.0, *(pose.zoom for pose in poses)))
        size = (max(1, round(room_w * density)), max(1, round(room_h * density)))
        if size != picture.size:
            shrinking = size[0] < picture.size[0]
            if shrinking:
                picture = picture.resize(size, Image.Resampling.LANCZOS)
            else:  # OpenCV's bicubic: the same curve as Pillow's, several times faster
                grown = cv2.resize(np.asarray(picture), size, interpolation=cv2.INTER_CUBIC)
                picture = Image.fromarray(grown, "RGB")
        scale = (size[0] / room_w, size[1] / room_h)
        reach = [pose.half_extent(width, height) for pose in poses]
        need_x = max(x for x, _ in reach) - room_w / 2
        need_y = max(y for _, y in reach) - room_h / 2
        margin = (
            math.ceil(need_x * scale[0]) + 2 if need_x > _ROUNDING_PX else 0,
            math.ceil(need_y * scale[1]) + 2 if need_y > _ROUNDING_PX else 0,
        )
        pixels = _extend(picture, margin) if margin != (0, 0) else np.asarray(picture)
        centre = (margin[0] + size[0] / 2, margin[1] + size[1] / 2)
        return cls(pixels, scale, centre)

    @functools.cached_property
    def planes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The canvas as BT.709 Y, Cb and Cr planes, chroma at half resolution."""
        odd = ((0, self.rgb.shape[0] % 2), (0, self.rgb.shape[1] % 2), (0, 0))
        return rgb_to_yuv420p(np.pad(self.rgb, odd, mode="edge"))  # 4:2:0 needs even sides

    @functools.cached_property
    def packed_planes(self) -> tuple[np.ndarray, np.ndarray]:
        """Luma, and Cb and Cr packed in one four-channel plane (twice over): OpenCV warps
        four 8-bit channels about as fast as one, two or three much slower."""
        y, cb, cr = self.planes
        return y, cv2.merge([cb, cr, cb, cr])

    def render_yuv(
        self,
        sizes: tuple[tuple[int, int], tuple[int, int]],
        frame: tuple[int, int],
        pose: Pose,
        interpolation: int = cv2.INTER_LINEAR,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The canvas as seen from ``pose`` as Y, Cb and Cr planes of ``sizes`` (luma,
        chroma): two warps, not three."""
        y, chroma = self.packed_planes
        luma = self.render(y, sizes[0], frame, pose, interpolation)
        both = self.render(chroma, sizes[1], frame, pose, interpolation)
        return luma, cv2.extractChannel(both, 0), cv2.extractChannel(both, 1)

    def render(
        self,
        plane: np.ndarray,
        size: tuple[int, int],
        frame: tuple[int, int],
        pose: Pose,
        interpolation: int = cv2.INTER_LINEAR,
        *,
        origin: tuple[int, int] = (0, 0),
        outside: int | tuple[int, ...] | None = None,
    ) -> np.ndarray:
        """``plane`` (the RGB canvas, or one of ``planes``) as seen from ``pose``.

        ``size`` is the size of the output to render, ``frame`` the output frame's (at
        full resolution), so the half-resolution chroma planes are filmed with the same
        pose as luma. A plane of another picture with this canvas's geometry (a layer)
        is filmed the same way. ``origin`` renders only the part of the output whose
        top-left corner is there (in this plane's pixels); ``outside`` is the value shown
        beyond the plane's edge, one per channel for a plane of several (default: the edge
        pixels repeated).
        """
        matrix = self.inverse_map(plane, frame, pose, origin)
        border = cv2.BORDER_REPLICATE if outside is None else cv2.BORDER_CONSTANT
        return cv2.warpAffine(
            plane,
            matrix,
            size,
            flags=interpolation | cv2.WARP_INVERSE_MAP,
            borderMode=border,
            borderValue=0 if outside is None else outside,
        )

    def inverse_map(
        self,
        plane: np.ndarray,
        frame: tuple[int, int],
        pose: Pose,
        origin: tuple[int, int] = (0, 0),
    ) -> np.ndarray:
        """The 2x3 matrix taking output pixels of ``plane``'s resolution to its pixels."""
        ratio = 0.5 if plane.shape[0] < 0.75 * self.rgb.shape[0] else 1.0  # chroma: half
        unit_x, unit_y = self.scale[0] * ratio, self.scale[1] * ratio
        centre_x, centre_y = self.centre[0] * ratio, self.centre[1] * ratio
        half_w, half_h = frame[0] / (2 * pose.zoom), frame[1] / (2 * pose.zoom)
        cos, sin = math.cos(math.radians(pose.angle)), math.sin(math.radians(pose.angle))
        step = 1.0 / (pose.zoom * ratio)
        # Output position (i, j), measured from the frame's corner, lands on the canvas at
        # (a i + b j + c, d i + e j + f); pixel centres sit at half-integers.
        a, b = unit_x * cos * step, -unit_x * sin * step
        d, e = unit_y * sin * step, unit_y * cos * step
        c = centre_x + unit_x * (pose.x - cos * half_w + sin * half_h)
        f = centre_y + unit_y * (pose.y - sin * half_w - cos * half_h)
        c += a * origin[0] + b * origin[1]
        f += d * origin[0] + e * origin[1]
        # OpenCV puts pixel centres on integers: shift both sides by half a pixel.
        return np.array(
            [[a, b, c + 0.5 * (a + b) - 0.5], [d, e, f + 0.5 * (d + e) - 0.5]], dtype=np.float64
        )


def _extend(picture: Image.Image, margin: tuple[int, int]) -> np.ndarray:
    """Surround the picture with a blurred mirror of itself, blended in over a soft seam."""
    pad_x = min(margin[0], picture.width - 1)
    pad_y = min(margin[1], picture.height - 1)
    mirrored = np.pad(
        np.asarray(picture), ((pad_y, pad_y), (pad_x, pad_x), (0, 0)), mode="symmetric"
    )
    if (pad_x, pad_y) != margin:  # a margin wider than the picture: repeat the edge beyond
        extra = ((margin[1] - pad_y,) * 2, (margin[0] - pad_x,) * 2, (0, 0))
        mirrored = np.pad(mirrored, extra, mode="edge")
    sharp = Image.fromarray(mirrored, "RGB")
    side = max(picture.size)
    blurred = sharp.filter(ImageFilter.GaussianBlur(max(1.0, _MARGIN_BLUR * side)))
    # Distance outside the picture, in pixels, fades the blur in over the feather width.
    xs = np.arange(sharp.width, dtype=np.float32)
    ys = np.arange(sharp.height, dtype=np.float32)
    out_x = np.maximum(margin[0] - xs, xs - (margin[0] + picture.width - 1))
    out_y = np.maximum(margin[1] - ys, ys - (margin[1] + picture.height - 1))
    outside = np.maximum(out_x[np.newaxis, :], out_y[:, np.newaxis]).clip(0, None)
    feather = max(1.0, _MARGIN_FEATHER * side)
    mask = (np.clip(outside / feather, 0.0, 1.0) * 255).astype(np.uint8)
    return np.asarray(Image.composite(blurred, sharp, Image.fromarray(mask, "L")))
