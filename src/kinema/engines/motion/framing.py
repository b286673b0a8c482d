"""Subject-aware framing: where the crop sits so that every face stays whole in every frame.

Geometry is the camera's (see ``camera``): output pixels at the rest scale, origin at the
centre of the picture scaled to cover the frame. Framing decides three things:

1. **Crop or pad.** The picture covers the frame (a crop) unless the faces, each with room
   for the hair above and the chin below (``Face.framed``), cannot all fit in one crop; then
   it is padded: fitted whole over a blurred, darkened fill of itself (Veo's
   ``resizeMode: "pad"``), which can also be asked for outright.
2. **The rest frame.** The crop is centred on the faces, a little low so that they sit in
   the upper part of the frame, and kept inside the picture. Frame 0 is this crop.
3. **Every pose.** Each pose of the camera move is shifted to the rest frame, its
   magnification capped so that the faces still fit, and its centre clamped so that the
   faces stay inside the viewport (allowing for its roll) and the viewport inside the
   picture. Without faces the crop is centred and the poses are left as the move made them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
from PIL import Image, ImageFilter

from kinema.engines.motion.camera import Pose, cover_size
from kinema.engines.motion.faces import Face

__all__ = ["Framing", "ResizeMode", "frame_picture"]

ResizeMode = Literal["auto", "crop", "pad"]
Box = tuple[float, float, float, float]  # left, top, right, bottom

_FACE_BIAS = 0.06  # the rest frame's centre sits this fraction of its height below the faces'
_PAD_DENSITY = 1.25  # the padded composite has this many pixels per output pixel
_FILL_DARKEN = 0.45
_FILL_BLUR = 0.04  # blur radius of the fill, fraction of the composite's longer side


@dataclass(frozen=True)
class Framing:
    """The picture the camera films and where in it the shot must look."""

    picture: Image.Image  # the input picture, or its padded composite
    faces: tuple[Face, ...]  # in ``picture``'s pixels
    padded: bool
    rest: tuple[float, float]  # centre of frame 0 (output pixels from the picture centre)
    keep: Box | None  # the region every frame must show (same units), None without faces

    def place(self, poses: list[Pose], width: int, height: int, leaves: bool) -> list[Pose]:
        """The move's poses (made around the picture centre) moved to film this framing.

        ``leaves`` says the move may look beyond the picture (pull-outs): it is then not
        held inside it.
        """
        room = cover_size(self.picture.size, width, height)
        limit = _zoom_limit(self.keep, width, height, poses)
        placed = []
        for pose in poses:
            zoom = pose.zoom if pose.zoom <= 1.0 else 1.0 + (pose.zoom - 1.0) * limit
            moved = replace(pose, zoom=zoom, x=pose.x + self.rest[0], y=pose.y + self.rest[1])
            placed.append(_clamped(moved, self.keep, room, width, height, leaves))
        return placed


def frame_picture(
    picture: Image.Image,
    faces: list[Face],
    width: int,
    height: int,
    mode: ResizeMode = "auto",
) -> Framing:
    """Decide crop or pad and the rest frame for ``picture`` in a ``width`` x ``height`` clip."""
    picture = picture.convert("RGB")
    if mode == "pad" or (mode == "auto" and faces and not _fits(picture, faces, width, height)):
        return _padded(picture, faces, width, height)
    if mode == "crop" and faces and not _fits(picture, faces, width, height):
        faces = faces[:1]  # a crop was asked for: keep the largest face whole
    keep = _keep_box(picture, faces, width, height)
    room = cover_size(picture.size, width, height)
    rest = (0.0, 0.0)
    if keep is not None:
        centre_x = (keep[0] + keep[2]) / 2
        centre_y = (keep[1] + keep[3]) / 2 + _FACE_BIAS * height
        # Faces inside the frame first, then the frame inside the picture.
        centre_x = min(max(centre_x, keep[2] - width / 2), keep[0] + width / 2)
        centre_y = min(max(centre_y, keep[3] - height / 2), keep[1] + height / 2)
        free_x, free_y = max(0.0, (room[0] - width) / 2), max(0.0, (room[1] - height) / 2)
        rest = (min(max(centre_x, -free_x), free_x), min(max(centre_y, -free_y), free_y))
    return Framing(picture, tuple(faces), False, rest, keep)


def _keep_box(picture: Image.Image, faces: list[Face], width: int, height: int) -> Box | None:
    """The faces' framed boxes, joined, in camera units and clipped to the picture."""
    if not faces:
        return None
    room_w, room_h = cover_size(picture.size, width, height)
    scale = room_w / picture.width
    boxes = np.array([face.framed() for face in faces])
    left, top = boxes[:, 0].min(), boxes[:, 1].min()
    right, bottom = boxes[:, 2].max(), boxes[:, 3].max()
    left, right = max(left, 0.0), min(right, picture.width)
    top, bottom = max(top, 0.0), min(bottom, picture.height)
    return (
        left * scale - room_w / 2,
        top * scale - room_h / 2,
        right * scale - room_w / 2,
        bottom * scale - room_h / 2,
    )


def _fits(picture: Image.Image, faces: list[Face], width: int, height: int) -> bool:
    keep = _keep_box(picture, faces, width, height)
    assert keep is not None
    return keep[2] - keep[0] <= width and keep[3] - keep[1] <= height


def _padded(picture: Image.Image, faces: list[Face], width: int, height: int) -> Framing:
    """The picture fitted whole, centred over a blurred, darkened cover of itself."""
    size = (round(width * _PAD_DENSITY), round(height * _PAD_DENSITY))
    cover_scale = max(size[0] / picture.width, size[1] / picture.height)
    small = picture.resize(
        (
            max(1, round(picture.width * cover_scale / 8)),
            max(1, round(picture.height * cover_scale / 8)),
        ),
        Image.Resampling.BILINEAR,
    )
    radius = max(1.0, _FILL_BLUR * max(size) / 8)
    fill = small.filter(ImageFilter.GaussianBlur(radius))
    fill = fill.resize(
        (round(picture.width * cover_scale), round(picture.height * cover_scale)),
        Image.Resampling.BILINEAR,
    )
    left = (fill.width - size[0]) // 2
    top = (fill.height - size[1]) // 2
    fill = fill.crop((left, top, left + size[0], top + size[1]))
    fill = Image.fromarray((np.asarray(fill, np.float32) * _FILL_DARKEN).astype(np.uint8), "RGB")
    fit = min(size[0] / picture.width, size[1] / picture.height)
    shown = picture.resize(
        (max(1, round(picture.width * fit)), max(1, round(picture.height * fit))),
        Image.Resampling.LANCZOS,
    )
    offset = ((size[0] - shown.width) // 2, (size[1] - shown.height) // 2)
    fill.paste(shown, offset)
    placed = [face.scaled(fit, fit, offset[0], offset[1]) for face in faces]
    keep = _keep_box(fill, placed, width, height)
    return Framing(fill, tuple(placed), True, (0.0, 0.0), keep)


def _zoom_limit(keep: Box | None, width: int, height: int, poses: list[Pose]) -> float:
    """The fraction of the move's magnification that still lets the faces fit."""
    top_zoom = max(pose.zoom for pose in poses)
    if keep is None or top_zoom <= 1.0:
        return 1.0
    turn = max(abs(math.sin(math.radians(pose.angle))) for pose in poses)
    need_w, need_h = keep[2] - keep[0], keep[3] - keep[1]
    # A viewport of zoom z shows (W - H sin)/z by (H - W sin)/z upright: the faces need that.
    fits = min(
        (width - height * turn) / max(need_w, 1e-6),
        (height - width * turn) / max(need_h, 1e-6),
    )
    if fits >= top_zoom:
        return 1.0
    return max(0.0, (fits - 1.0) / (top_zoom - 1.0))


def _clamped(
    pose: Pose, keep: Box | None, room: tuple[float, float], width: int, height: int, leaves: bool
) -> Pose:
    x, y = pose.x, pose.y
    sin = abs(math.sin(math.radians(pose.angle)))
    if not leaves:  # the viewport stays inside the picture
        reach_x, reach_y = replace(pose, x=0.0, y=0.0).half_extent(width, height)
        free_x, free_y = max(0.0, room[0] / 2 - reach_x), max(0.0, room[1] / 2 - reach_y)
        x, y = min(max(x, -free_x), free_x), min(max(y, -free_y), free_y)
    if keep is not None:  # the faces stay inside the viewport: this one wins
        half_w = (width - height * sin) / (2 * pose.zoom)
        half_h = (height - width * sin) / (2 * pose.zoom)
        x = _within(x, keep[2] - half_w, keep[0] + half_w)
        y = _within(y, keep[3] - half_h, keep[1] + half_h)
    return replace(pose, x=x, y=y)


def _within(value: float, low: float, high: float) -> float:
    if low > high:  # cannot hold both edges: centre on the region
        return (low + high) / 2
    return min(max(value, low), high)
