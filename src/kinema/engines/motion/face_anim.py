"""A talking face: the mouth follows the speech, the eyes blink, the head sways a little.

All of it is a warp of the picture driven by the five landmarks the face detector gives
(eyes, nose, mouth corners), applied to small regions of the subject's layer before the
camera films it, so it costs a few hundred thousand pixels per frame whatever the output
size.

- **Mouth.** Its shape per frame comes from the sounds spoken (``visemes``): how open it
  is pulls the region below the mouth line down (the jaw, the chin with it, fading out
  under the chin) and darkens the gap between the lips like an open mouth, as tall as
  the jaw dropped; how the corners sit moves them out (a wide, spread mouth: the gap
  wider and flatter) or draws them in (a rounded mouth: the gap narrower and rounder).
  A negative openness presses the lips together: where the picture's mouth is parted at
  rest (teeth showing, found from its pixels), the upper and the lower lip are drawn
  over the gap until they meet, for m, b and p.
  ``speech_openness`` (loudness alone) is kept for voices that report no sounds.
- **Blinks.** At natural intervals (2-6 s apart, seeded) each eye closes and reopens over
  about 0.2 s: the upper lid (the skin just above the eye, stretched) slides down over it.
- **Head and breath.** A slow, seeded sway of the subject's layer: a pixel or two of
  travel and a fraction of a degree of roll (``head_sway``), so the still figure
  breathes. The engine applies it as an offset of the layer's camera pose.

Tracks are arrays with one value per frame, computed up front; the same seed gives the
same tracks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from kinema.engines.motion.faces import Face

__all__ = ["FaceRig", "blink_track", "head_sway", "speech_openness"]

_BLINK_GAP_S = (2.0, 6.0)
_BLINK_S = 0.22  # close and reopen
_MOUTH_DROP = 0.50  # jaw drop at full loudness, fraction of the mouth's half width
_LIP_LINE = 0.08  # where the lips part, below the corners' line (fraction of the half width)
_CORNER_OUT = 0.14  # a spread mouth's corners move out this far (fraction of the half width)
_CORNER_IN = 0.24  # a rounded mouth's corners move in this far
_TEETH_ABOVE = 18.0  # teeth are this much brighter (luma levels) than the lower lip
_SWAY_PX = 1.6  # head travel, output pixels at 1080 lines
_SWAY_DEG = 0.35
_BREATH_S = 4.2  # one breath


def speech_openness(speech: np.ndarray, sample_rate: int, fps: int, count: int) -> np.ndarray:
    """How open the mouth is on each of ``count`` frames (0..1), from the voice track.

    The loudness (RMS over each frame's 1/fps) is taken on a decibel scale between
    -45 dBFS (closed) and the line's own loud parts (open), then smoothed with a fast
    attack and a slower release, as a jaw moves.
    """
    opens = np.zeros(count, np.float32)
    if speech.size == 0:
        return opens
    step = sample_rate / fps
    energy = np.zeros(count, np.float64)
    for index in range(count):
        chunk = speech[int(index * step) : int((index + 1) * step)]
        if chunk.size:
            energy[index] = float(np.sqrt(np.mean(np.square(chunk, dtype=np.float64))))
    level = 20 * np.log10(np.maximum(energy, 1e-9))
    loud = np.percentile(level[level > -45], 90) if (level > -45).any() else -20.0
    raw = np.clip((level + 45.0) / max(loud + 45.0, 1.0), 0.0, 1.0)
    value = 0.0
    for index, target in enumerate(raw):
        value += (target - value) * (0.8 if target > value else 0.45)
        opens[index] = value
    return opens


def blink_track(count: int, fps: int, rng: np.random.Generator) -> np.ndarray:
    """Eyelid closure per frame (0 open .. 1 shut), blinks at seeded natural intervals."""
    closure = np.zeros(count, np.float32)
    seconds = np.arange(count) / fps
    at = float(rng.uniform(0.6, 2.5))
    while at < count / fps:
        phase = (seconds - at) / _BLINK_S
        inside = (phase >= 0) & (phase <= 1)
        closure[inside] = np.maximum(closure[inside], np.sin(np.pi * phase[inside]) ** 1.5)
        at += float(rng.uniform(*_BLINK_GAP_S))
    return closure


def head_sway(
    count: int, fps: int, height: int, rng: np.random.Generator
) -> list[tuple[float, float, float, float]]:
    """Per frame (dx, dy, roll, zoom) of the subject's layer: a slow sway and breathing."""
    seconds = np.arange(count) / fps
    scale = height / 1080
    phases = rng.uniform(0, 2 * np.pi, 3)
    rates = rng.uniform(0.13, 0.27, 3)
    ramp = np.minimum(1.0, seconds / 0.5)  # starts from the still picture
    dx = _SWAY_PX * scale * np.sin(2 * np.pi * rates[0] * seconds + phases[0]) * ramp
    dy = 0.6 * _SWAY_PX * scale * np.sin(2 * np.pi * rates[1] * seconds + phases[1]) * ramp
    roll = _SWAY_DEG * np.sin(2 * np.pi * rates[2] * seconds + phases[2]) * ramp
    breath = 1.0 + 0.0025 * (1 - np.cos(2 * np.pi * seconds / _BREATH_S)) * ramp
    return [
        (float(a), float(b), float(c), float(d))
        for a, b, c, d in zip(dx, dy, roll, breath, strict=True)
    ]


@dataclass
class _Region:
    """One warped region of one plane: its place, its pristine pixels and its warp field."""

    plane: np.ndarray  # the writable plane the region lives in
    top: int
    left: int
    pristine: np.ndarray
    base_x: np.ndarray  # remap grid (float32), region coordinates
    base_y: np.ndarray
    field: np.ndarray  # vertical displacement at full strength (float32)
    sideways: np.ndarray | None = None  # mouth: the corners' horizontal displacement
    dark: float | np.ndarray | None = None  # the open mouth darkens towards it (None: no)
    across: np.ndarray | None = None  # mouth: (x - centre) / half width, per pixel
    down: np.ndarray | None = None  # mouth: (y - centre) / half width, per pixel
    upper: np.ndarray | None = None  # eyes: the eye's upper edge, region rows, per pixel
    lid: np.ndarray | None = None  # eyes: the row the lid reaches when shut, per pixel
    parted: tuple[float, float] | None = None  # mouth: the gap between the lips at rest


class FaceRig:
    """The mouth and eye regions of the faces, on planes the engine renders from.

    ``planes`` are writable arrays (luma, chroma at half size, and an alpha plane if
    any) with the picture at ``scales[i]`` pixels per picture pixel; ``apply`` rewrites
    their face regions in place for one frame.
    """

    def __init__(
        self,
        faces: list[Face] | tuple[Face, ...],
        planes: list[np.ndarray],
        scales: list[float],
        darks: list[float | np.ndarray | None],
    ) -> None:
        self._mouths: list[_Region] = []
        self._eyes: list[_Region] = []
        for face in faces:
            parted = _parted(planes[0], face.scaled(scales[0], scales[0]))
            for plane, scale, dark in zip(planes, scales, darks, strict=True):
                moved = face.scaled(scale, scale)
                mouth = _mouth_region(plane, moved, dark)
                if mouth is not None:
                    mouth.parted = parted
                if mouth is not None:
                    self._mouths.append(mouth)
                if dark is None:  # an alpha plane: the eyes lie inside the face, opaque
                    continue
                for eye in (moved.left_eye, moved.right_eye):
                    region = _eye_region(plane, eye, moved.eye_distance)
                    if region is not None:
                        self._eyes.append(region)
        self._shown: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @property
    def empty(self) -> bool:
        return not self._mouths and not self._eyes

    def apply(self, openness: float, closure: float, spread: float = 0.0) -> None:
        """Show the faces with the mouth ``openness`` open (below 0: the lips pressed
        together), its corners ``spread`` (-1 rounded .. 1 wide), and the eyes
        ``closure`` shut."""
        openness = 0.0 if abs(openness) <= 0.01 else round(openness, 3)
        closure = _settled(closure)
        spread = 0.0 if abs(spread) <= 0.01 else round(spread, 3)
        if (openness, spread) != self._shown[:2]:
            for region in self._mouths:
                _warp_mouth(region, openness, spread)
        if closure != self._shown[2]:
            for region in self._eyes:
                _warp_eye(region, closure)
        self._shown = (openness, spread, closure)


def _settled(value: float) -> float:
    """Values too small to see are zero, so a still face is not redrawn frame after frame."""
    return 0.0 if value <= 0.01 else round(value, 3)


def _grid(left: int, top: int, right: int, bottom: int) -> tuple[np.ndarray, np.ndarray]:
    xs = np.arange(left, right, dtype=np.float32)
    ys = np.arange(top, bottom, dtype=np.float32)
    return np.meshgrid(xs, ys)


def _clip(
    plane: np.ndarray, left: float, top: float, right: float, bottom: float
) -> tuple[int, int, int, int] | None:
    height, width = plane.shape[:2]
    box = (
        max(0, math.floor(left)),
        max(0, math.floor(top)),
        min(width, math.ceil(right)),
        min(height, math.ceil(bottom)),
    )
    if box[2] - box[0] < 4 or box[3] - box[1] < 4:
        return None
    return box


def _parted(plane: np.ndarray, face: Face) -> tuple[float, float] | None:
    """Where the lips are parted at rest (teeth showing between them), as the top and
    bottom of the gap in the mouth's units (half its width, down from the corners'
    line), or None for a closed mouth. Rows of the mouth's middle brighter than the lower
    lip and chin by ``_TEETH_ABOVE`` count as teeth."""
    mx, my = face.mouth_centre
    half = _half_width(face)
    grey = plane[..., 0] if plane.ndim == 3 else plane
    columns = slice(max(0, round(mx - 0.4 * half)), round(mx + 0.4 * half))

    def row(unit: float) -> float:
        y = round(my + unit * half)
        if not 0 <= y < grey.shape[0]:
            return 0.0
        return float(np.median(grey[y, columns]))

    units = np.arange(-0.35, 0.6, 0.5 / max(half, 1.0))
    lower = np.median([row(unit) for unit in np.linspace(0.45, 0.8, 6)])
    teeth = [unit for unit in units if row(unit) > lower + _TEETH_ABOVE]
    if not teeth or max(teeth) - min(teeth) < 0.1:
        return None
    return (float(min(teeth)) - 0.05, float(max(teeth)) + 0.05)


def _half_width(face: Face) -> float:
    return max(
        0.5
        * math.hypot(
            face.mouth_right[0] - face.mouth_left[0], face.mouth_right[1] - face.mouth_left[1]
        ),
        0.12 * face.box[2],
    )


def _mouth_region(plane: np.ndarray, face: Face, dark: float | np.ndarray | None) -> _Region | None:
    mx, my = face.mouth_centre
    half = _half_width(face)
    box = _clip(plane, mx - 1.9 * half, my - 0.9 * half, mx + 1.9 * half, my + 2.8 * half)
    if box is None:
        return None
    left, top, right, bottom = box
    xs, ys = _grid(left, top, right, bottom)
    across = np.clip(np.abs(xs - mx) / (1.7 * half), 0.0, 1.0)
    sideways = np.cos(across * np.pi / 2) ** 2
    down = (ys - my) / half
    # 0 above the mouth line, 1 from just below it to the chin, fading out under the chin
    rise = np.clip((down + 0.15) / 0.25, 0.0, 1.0)
    fall = np.clip((2.6 - down) / 1.1, 0.0, 1.0)
    field = (_MOUTH_DROP * half * sideways * rise * fall).astype(np.float32)
    pristine = plane[top:bottom, left:right].copy()
    across_unit = ((xs - mx) / half).astype(np.float32)
    down_unit = ((ys - my) / half).astype(np.float32)
    # the corners move along the mouth line: most at the corners, none at the middle or
    # far out on the cheeks, fading above the upper lip and below the lower
    reach = np.clip(1.0 - np.abs(np.abs(across_unit) - 1.0) / 0.9, 0.0, 1.0)
    lips = np.clip(1.0 - np.abs(down_unit - 0.15) / 0.75, 0.0, 1.0)
    corners = (half * np.sign(across_unit) * reach * lips).astype(np.float32)
    return _Region(
        plane, top, left, pristine, xs - left, ys - top, field, corners, dark, across_unit,
        down_unit,
    )  # fmt: skip


def _eye_region(plane: np.ndarray, eye: tuple[float, float], eye_distance: float) -> _Region | None:
    ex, ey = eye
    half_w, half_h = 0.24 * eye_distance, 0.12 * eye_distance
    box = _clip(plane, ex - 1.3 * half_w, ey - 2.2 * half_h, ex + 1.3 * half_w, ey + 1.5 * half_h)
    if box is None or half_h < 1.0:
        return None
    left, top, right, bottom = box
    xs, ys = _grid(left, top, right, bottom)
    across = np.clip(1.0 - ((xs - ex) / half_w) ** 2, 0.0, 1.0)
    reach = half_h * np.sqrt(across)  # the eye's upper and lower edge at each column
    lid = (ey + reach).astype(np.float32)  # when shut, the lid comes down to here
    upper = (ey - reach).astype(np.float32)
    # where the lid skin is sampled from: a band just above the eye, stretched down
    field = (upper - 0.35 * half_h).astype(np.float32)
    pristine = plane[top:bottom, left:right].copy()
    return _Region(
        plane, top, left, pristine, xs - left, ys - top, field,
        upper=(upper - top).astype(np.float32), lid=(lid - top).astype(np.float32),
    )  # fmt: skip


def _warp_mouth(region: _Region, openness: float, spread: float = 0.0) -> None:
    target = region.plane[
        region.top : region.top + region.pristine.shape[0],
        region.left : region.left + region.pristine.shape[1],
    ]
    pressed = openness < 0.0 and region.parted is not None
    opening = max(openness, 0.0)
    if opening <= 0.01 and spread == 0.0 and not pressed:
        target[...] = region.pristine
        return
    map_y = region.base_y - region.field * opening
    if pressed:
        map_y = _pressed(region, map_y, -openness)
    map_x = region.base_x
    if spread != 0.0 and region.sideways is not None:
        # a pixel shows what lay ``shift`` further in (spread) or out (rounded)
        map_x = region.base_x - region.sideways * (
            spread * (_CORNER_OUT if spread > 0 else _CORNER_IN)
        )
    warped = cv2.remap(
        region.pristine, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    if (
        openness > 0.01
        and region.dark is not None
        and region.across is not None
        and region.down is not None
    ):
        # the opening: a lens between the lips, as tall as the jaw has dropped, wider
        # for a spread mouth and narrower for a rounded one; worked out only over the
        # rows and columns it can reach
        gap = _MOUTH_DROP * openness
        corner = _CORNER_OUT if spread > 0 else _CORNER_IN
        width = 0.75 * (0.6 + 0.4 * min(1.0, openness * 1.5)) * (1.0 + corner * spread)
        rows = np.searchsorted(region.down[:, 0], (_LIP_LINE - 0.05, _LIP_LINE + gap + 0.05))
        cols = np.searchsorted(region.across[0], (-width, width))
        box = (slice(int(rows[0]), int(rows[1])), slice(int(cols[0]), int(cols[1])))
        across, down = region.across[box], region.down[box]
        inside = (
            1.0 - (across / width) ** 2 - ((down - _LIP_LINE - gap / 2) / (gap / 2 + 0.04)) ** 2
        )
        strength = np.clip(inside * 2.0, 0.0, 1.0) * 0.85
        if warped.ndim == 3:
            strength = strength[..., np.newaxis]
        shaded = warped[box].astype(np.float32)
        shaded += (region.dark - shaded) * strength
        warped[box] = np.clip(np.rint(shaded), 0, 255).astype(np.uint8)
    target[...] = warped


def _pressed(region: _Region, map_y: np.ndarray, press: float) -> np.ndarray:
    """``map_y`` with the lips drawn over their parted gap, ``press`` of the way to
    meeting: each lip's rows mirrored into the gap from its edge, the gap narrowing
    towards the corners."""
    assert region.parted is not None and region.down is not None and region.across is not None
    top, bottom = region.parted
    middle = (top + bottom) / 2
    shrink = np.sqrt(np.clip(1.0 - (region.across / 0.85) ** 2, 0.0, 1.0))
    upper = middle + (top - middle) * shrink  # the gap's edges in each column
    lower = middle + (bottom - middle) * shrink
    down = region.down
    source = down.copy()
    over_upper = (down >= upper) & (down <= upper + press * (middle - upper))
    over_lower = (down <= lower) & (down >= lower - press * (lower - middle))
    source[over_upper] = (2 * upper - down)[over_upper]
    source[over_lower] = (2 * lower - down)[over_lower]
    unit = 1.0 / max(float(down[1, 0] - down[0, 0]), 1e-6) if down.shape[0] > 1 else 1.0
    return (map_y + (source - down) * unit).astype(np.float32)


def _warp_eye(region: _Region, closure: float) -> None:
    target = region.plane[
        region.top : region.top + region.pristine.shape[0],
        region.left : region.left + region.pristine.shape[1],
    ]
    if closure <= 0.01:
        target[...] = region.pristine
        return
    assert region.lid is not None and region.upper is not None
    upper = region.upper
    line = upper + (region.lid - upper) * closure  # where the lid edge is now, region rows
    covered = np.clip(line - region.base_y + 0.5, 0.0, 1.0) * (region.base_y >= upper - 0.5)
    covered *= region.lid > upper + 0.5  # inside the eye's outline only
    # rows from the eye's top to the lid edge show the skin just above the eye, stretched
    source = (region.field - region.top) - (line - region.base_y) * 0.4
    map_y = region.base_y * (1 - covered) + source * covered
    warped = cv2.remap(
        region.pristine,
        region.base_x,
        map_y.astype(np.float32),
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    target[...] = warped
