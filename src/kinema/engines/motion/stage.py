"""A layered shot: the subject filmed over its filled-in background, faces animated.

The 2.5D camera: the subject's layer follows the camera's pose (plus the head's sway), and
the background follows a softened copy of the move (``_BACKGROUND_SHARE`` of the way from
the rest pose to it), so under a pan or a push-in the subject slides over what lies behind
it. The background is rendered whole; the subject only over the part of the frame its
layer covers, composited with premultiplied planes and a "what shows through" plane
(255 - alpha) in two SIMD passes: ``bg * through / 255 + subject``.

Planes are the canvas's: RGB, or YUV 4:2:0 (luma and two half-size chroma planes), each
with its matching alpha. The face rig rewrites the mouth and eye regions of the subject's
premultiplied planes in place before each frame (frames are rendered one at a time, in
order, on one thread).
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import cv2
import numpy as np

from kinema.engines.motion.camera import Canvas, Pose
from kinema.engines.motion.face_anim import FaceRig
from kinema.engines.motion.faces import Face
from kinema.engines.motion.layers import Layers

__all__ = ["FaceTracks", "LayeredShot", "background_poses"]

_BACKGROUND_SHARE = 0.45
_BANDS = 16  # the subject's rows are composited in this many bands, each as narrow as it can
_MOUTH_DARK_YUV = (24.0, 124.0, 146.0)
_MOUTH_DARK_RGB = (40.0, 12.0, 10.0)


def background_poses(poses: list[Pose]) -> list[Pose]:
    """The background's poses: the camera's move, ``_BACKGROUND_SHARE`` as far from rest."""
    rest = poses[0]
    share = _BACKGROUND_SHARE

    def toward(pose: Pose) -> Pose:
        return Pose(
            zoom=rest.zoom + (pose.zoom - rest.zoom) * share,
            x=rest.x + (pose.x - rest.x) * share,
            y=rest.y + (pose.y - rest.y) * share,
            angle=rest.angle + (pose.angle - rest.angle) * share,
        )

    return [toward(pose) for pose in poses]


@dataclass(frozen=True)
class FaceTracks:
    """Per frame: mouth openness (0..1), eyelid closure (0..1), sway (dx, dy, roll, zoom),
    and the mouth's corners (-1 rounded .. 1 spread)."""

    openness: np.ndarray
    closure: np.ndarray
    sway: list[tuple[float, float, float, float]]
    spread: np.ndarray | None = None

    def spread_at(self, index: int) -> float:
        return 0.0 if self.spread is None else float(self.spread[index])

    def key(self, index: int) -> tuple[float, float, float, tuple[float, float, float, float]]:
        return (
            float(self.openness[index]),
            self.spread_at(index),
            float(self.closure[index]),
            self.sway[index],
        )


class LayeredShot:
    """The subject layer and its background, ready to be filmed frame by frame."""

    def __init__(
        self,
        canvas: Canvas,
        picture_size: tuple[int, int],
        room: tuple[float, float],
        layers: Layers,
        faces: Sequence[Face],
        tracks: FaceTracks | None,
    ) -> None:
        self.canvas = canvas
        self._picture_size = picture_size
        self._room = room  # the picture's size in output pixels (``cover_size``)
        self._layers = layers
        self._faces = tuple(faces)
        self._tracks = tracks
        self._alpha = self._like_canvas(layers.alpha, outside=0)
        self._background = Canvas(
            self._like_canvas(np.asarray(layers.background), outside=None),
            canvas.scale,
            canvas.centre,
        )
        # the subject's box on the canvas, with a pixel to spare for the feather
        left, top, right, bottom = layers.box
        sx, sy, ox, oy = self._placement()
        box = (
            max(0, math.floor(left * sx + ox) - 2),
            max(0, math.floor(top * sy + oy) - 2),
            min(self._alpha.shape[1], math.ceil(right * sx + ox) + 2),
            min(self._alpha.shape[0], math.ceil(bottom * sy + oy) + 2),
        )
        self._bands = _bands(self._alpha, box)

    # -- planes --------------------------------------------------------------------------

    def _placement(self) -> tuple[float, float, float, float]:
        """Picture pixel -> canvas pixel: scale x, scale y, offset x, offset y."""
        size, margin = self._block()
        return (
            size[0] / self._picture_size[0],
            size[1] / self._picture_size[1],
            float(margin[0]),
            float(margin[1]),
        )

    def _block(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """The picture's block on the canvas (as ``Canvas.build`` laid it): size, margin."""
        height, width = self.canvas.rgb.shape[:2]
        size = (
            round(self._room[0] * self.canvas.scale[0]),
            round(self._room[1] * self.canvas.scale[1]),
        )
        return size, ((width - size[0]) // 2, (height - size[1]) // 2)

    def _like_canvas(self, pixels: np.ndarray, outside: int | None) -> np.ndarray:
        """A picture-sized array resized and padded to the canvas's geometry."""
        size, margin = self._block()
        if (pixels.shape[1], pixels.shape[0]) != size:
            method = cv2.INTER_AREA if size[0] < pixels.shape[1] else cv2.INTER_CUBIC
            pixels = cv2.resize(pixels, size, interpolation=method)
        if margin == (0, 0):
            return np.ascontiguousarray(pixels)
        pad = [(margin[1], margin[1]), (margin[0], margin[0])] + [(0, 0)] * (pixels.ndim - 2)
        if outside is None:
            return np.pad(pixels, pad, mode="symmetric")
        return np.pad(pixels, pad, mode="constant", constant_values=outside)

    @functools.cached_property
    def _yuv(self) -> tuple[np.ndarray, np.ndarray, FaceRig | None]:
        """The subject as two packed planes: luma (premultiplied Y, what shows through) and
        chroma (premultiplied Cb and Cr, what shows through at half size), four channels
        each, the fourth unused: OpenCV warps four 8-bit channels about as fast as one, and
        two or three much slower."""
        y, cb, cr = self.canvas.planes
        alpha = self._alpha
        odd = ((0, alpha.shape[0] % 2), (0, alpha.shape[1] % 2))
        alpha = np.pad(alpha, odd, mode="edge")
        alpha_c = cv2.resize(
            alpha, (alpha.shape[1] // 2, alpha.shape[0] // 2), interpolation=cv2.INTER_AREA
        )
        blank, blank_c = np.zeros_like(y), np.zeros_like(cb)
        luma = cv2.merge([_premultiplied(y, alpha), 255 - alpha, blank, blank])
        chroma = cv2.merge(
            [_premultiplied(cb, alpha_c), _premultiplied(cr, alpha_c), 255 - alpha_c, blank_c]
        )
        sx, sy, ox, oy = self._placement()
        faces = [face.scaled(sx, sy, ox, oy) for face in self._faces]
        # the open mouth darkens the picture's channels; what shows through stays 0 there
        darks: list[float | np.ndarray | None] = [
            np.array([_MOUTH_DARK_YUV[0], 0.0, 0.0, 0.0], np.float32),
            np.array([*_MOUTH_DARK_YUV[1:], 0.0, 0.0], np.float32),
        ]
        rig = FaceRig(faces, [luma, chroma], [1.0, 0.5], darks) if faces else None
        return luma, chroma, rig

    @functools.cached_property
    def _rgb(self) -> tuple[list[np.ndarray], list[np.ndarray], FaceRig | None]:
        alpha3 = np.repeat(self._alpha[..., np.newaxis], 3, axis=2)
        subject = [_premultiplied(self.canvas.rgb, alpha3)]
        through = [255 - alpha3]
        sx, sy, ox, oy = self._placement()
        faces = [face.scaled(sx, sy, ox, oy) for face in self._faces]
        dark = np.array(_MOUTH_DARK_RGB, np.float32)
        rig = FaceRig(faces, [*subject, *through], [1.0, 1.0], [dark, None]) if faces else None
        return subject, through, rig

    # -- frames --------------------------------------------------------------------------

    def render(
        self,
        yuv: bool,
        sizes: tuple[tuple[int, int], ...],
        frame: tuple[int, int],
        pose: Pose,
        background_pose: Pose,
        index: int,
        interpolation: int,
    ) -> tuple[np.ndarray, ...]:
        """One frame: the background at ``background_pose``, the subject over it at ``pose``."""
        if self._tracks is not None:
            dx, dy, roll, breath = self._tracks.sway[index]
            pose = replace(
                pose, x=pose.x + dx, y=pose.y + dy, angle=pose.angle + roll, zoom=pose.zoom * breath
            )
        if yuv:
            return self._render_yuv(sizes, frame, pose, background_pose, index, interpolation)
        subject, through, rig = self._rgb
        self._animate(rig, index)
        rendered = self._background.render(
            self._background.rgb, sizes[0], frame, background_pose, interpolation
        )
        for region in self._output_regions(pose, frame):
            left, top, right, bottom = region
            layer = self._layer(subject[0], region, frame, pose, interpolation, 0)
            # the same sampling as the subject's, so that what shows of it and what shows
            # through add up to the whole (no fringe at its edge)
            shows = self._layer(through[0], region, frame, pose, interpolation, 255)
            _composite(rendered[top:bottom, left:right], shows, layer)
        return (rendered,)

    def _render_yuv(
        self,
        sizes: tuple[tuple[int, int], ...],
        frame: tuple[int, int],
        pose: Pose,
        background_pose: Pose,
        index: int,
        interpolation: int,
    ) -> tuple[np.ndarray, ...]:
        luma, chroma, rig = self._yuv
        self._animate(rig, index)
        y, cb, cr = self._background.render_yuv(
            (sizes[0], sizes[1]), frame, background_pose, interpolation
        )
        for region in self._output_regions(pose, frame):
            left, top, right, bottom = region
            layer = self._layer(luma, region, frame, pose, interpolation, (0, 255, 0, 0))
            _composite(
                y[top:bottom, left:right],
                cv2.extractChannel(layer, 1),
                cv2.extractChannel(layer, 0),
            )
            half = (left // 2, top // 2, right // 2, bottom // 2)  # the chroma planes' region
            left, top, right, bottom = half
            layer = self._layer(chroma, half, frame, pose, interpolation, (0, 0, 255, 0))
            shows = cv2.extractChannel(layer, 2)
            _composite(cb[top:bottom, left:right], shows, cv2.extractChannel(layer, 0))
            _composite(cr[top:bottom, left:right], shows, cv2.extractChannel(layer, 1))
        return y, cb, cr

    def _layer(
        self,
        pixels: np.ndarray,
        region: tuple[int, int, int, int],
        frame: tuple[int, int],
        pose: Pose,
        interpolation: int,
        outside: int | tuple[int, ...],
    ) -> np.ndarray:
        """The canvas plane ``pixels`` seen from ``pose``, over ``region`` (left, top,
        right, bottom) of an output plane; ``frame`` is the output frame's full size."""
        left, top, right, bottom = region
        return self.canvas.render(
            pixels,
            (right - left, bottom - top),
            frame,
            pose,
            interpolation,
            origin=(left, top),
            outside=outside,
        )

    def _animate(self, rig: FaceRig | None, index: int) -> None:
        if rig is not None and self._tracks is not None:
            tracks = self._tracks
            rig.apply(
                float(tracks.openness[index]), float(tracks.closure[index]), tracks.spread_at(index)
            )

    def _output_regions(
        self, pose: Pose, frame: tuple[int, int]
    ) -> list[tuple[int, int, int, int]]:
        """Where the subject lands in the output: one even-aligned box per band of its rows,
        the boxes stacked without overlap (each output row is composited once)."""
        matrix = self.canvas.inverse_map(self._alpha, frame, pose)
        forward = cv2.invertAffineTransform(matrix)

        def land(x: float, y: float) -> tuple[float, float]:
            return (
                forward[0, 0] * x + forward[0, 1] * y + forward[0, 2],
                forward[1, 0] * x + forward[1, 1] * y + forward[1, 2],
            )

        spans = []  # output x extent of each band's four corners
        for top, bottom, left, right in self._bands:
            xs = [land(x, y)[0] for x in (left, right) for y in (top, bottom)]
            spans.append((min(xs), max(xs)))
        centre = (self._bands[0][2] + self._bands[0][3]) / 2
        cuts = [land(centre, band[0])[1] for band in self._bands]
        first, last = self._bands[0], self._bands[-1]
        cuts[0] = min(land(x, first[0])[1] for x in (first[2], first[3]))
        cuts.append(max(land(x, last[1])[1] for x in (last[2], last[3])))
        regions = []
        for index in range(len(self._bands)):
            near = spans[max(0, index - 1) : index + 2]  # a rolled band leans on its neighbours
            x0 = max(0, math.floor(min(low for low, _ in near)) - 2) & ~1
            x1 = min(frame[0], (math.ceil(max(high for _, high in near)) + 3) & ~1)
            y0 = max(0, round(cuts[index]) - (2 if index == 0 else 0)) & ~1
            y1 = min(frame[1], (round(cuts[index + 1]) + (3 if index == len(cuts) - 2 else 0)) & ~1)
            if x1 > x0 and y1 > y0:
                regions.append((x0, y0, x1, y1))
        return regions


def _bands(alpha: np.ndarray, box: tuple[int, int, int, int]) -> list[tuple[int, int, int, int]]:
    """The subject's box cut into horizontal bands, each narrowed to where alpha is not 0:
    (top, bottom, left, right) in canvas pixels. A head is narrower than the shoulders, and
    every pixel left out of a band is one the frame does not have to blend."""
    left, top, right, bottom = box
    count = max(1, min(_BANDS, (bottom - top) // 16))
    edges = np.linspace(top, bottom, count + 1).round().astype(int)
    bands = []
    for start, stop in itertools.pairwise(edges):
        columns = np.flatnonzero(alpha[start:stop, left:right].max(axis=0))
        if columns.size:
            bands.append(
                (int(start), int(stop), left + int(columns[0]) - 2, left + int(columns[-1]) + 3)
            )
        else:
            bands.append((int(start), int(stop), left, left + 1))
    return bands


def _composite(window: np.ndarray, shows: np.ndarray, layer: np.ndarray) -> None:
    """``window`` (a view into the frame) becomes ``window * shows / 255 + layer``."""
    cv2.multiply(window, shows, dst=window, scale=1 / 255)
    cv2.add(window, layer, dst=window)


def _premultiplied(plane: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    return cv2.multiply(plane, alpha, scale=1 / 255)
