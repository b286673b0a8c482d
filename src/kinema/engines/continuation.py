"""Continuing a camera move: the motion engine's entry point for extensions.

An extension starts on the last frame of the video it continues (``EngineRequest.image``)
and the executor passes a frame from half a second earlier too (``previous_frames``). If
the new prompt names a move, the camera makes that one; otherwise it keeps doing what it
was doing: the move is read from how the picture changed between those two frames
(magnified: a push-in; slid sideways: a pan; slid vertically: a tilt; unchanged: a still
camera). Moves start at rest, so the join is smooth: the source eased out of its move,
the extension eases into the next one from the very picture the source ended on.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from PIL import Image

from kinema.engines.camera import CameraMove, MoveKind, camera_move, choose_camera
from kinema.types import EngineRequest

__all__ = ["continued_move", "estimate_move"]

_WORK_WIDTH = 480  # frames are compared at this width: enough for a global motion estimate
_STILL = 0.0015  # below this relative change, the camera was not moving
_MIN_MATCHES = 12


def continued_move(request: EngineRequest, forced: object) -> CameraMove | None:
    """The move of an extension, or None when ``request`` continues nothing (or a move is
    forced by configuration): the named move of the prompt, else the source's own."""
    if not request.previous_frames or forced is not None:
        return None
    named = choose_camera(request.prompt, request.seed)
    if named.kind != "drift":  # the prompt names a move: it wins
        return named
    frames = request.previous_frames
    kind = estimate_move(frames[0], frames[-1]) if len(frames) > 1 else None
    return named if kind is None else camera_move(kind, request.seed)


def estimate_move(earlier: Image.Image, later: Image.Image) -> MoveKind | None:
    """The camera move that turns ``earlier`` into ``later``, or None if it cannot tell
    (too little texture to match)."""
    a, b = _grey(earlier), _grey(later)
    orb = cv2.ORB.create(nfeatures=800)
    keys_a, desc_a = orb.detectAndCompute(a, None)
    keys_b, desc_b = orb.detectAndCompute(b, None)
    if desc_a is None or desc_b is None:
        return None
    matches = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True).match(desc_a, desc_b)
    if len(matches) < _MIN_MATCHES:
        return None
    src = np.array([keys_a[m.queryIdx].pt for m in matches], dtype=np.float32)
    dst = np.array([keys_b[m.trainIdx].pt for m in matches], dtype=np.float32)
    matrix, inliers = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC)
    if matrix is None or inliers is None or int(inliers.sum()) < _MIN_MATCHES:
        return None
    height, width = a.shape
    scale = math.hypot(matrix[0, 0], matrix[1, 0])
    centre = np.array([width / 2, height / 2, 1.0])
    shift_x, shift_y = matrix @ centre - centre[:2]
    zoom = abs(math.log(scale))
    pan, tilt = abs(shift_x) / width, abs(shift_y) / height
    strongest = max(zoom, pan, tilt)
    if strongest < _STILL:
        return "static"
    if strongest == zoom:
        return "push_in" if scale > 1 else "pull_out"
    if strongest == pan:  # the picture slides left when the camera turns right
        return "pan_right" if shift_x < 0 else "pan_left"
    return "tilt_down" if shift_y < 0 else "tilt_up"


def _grey(picture: Image.Image) -> np.ndarray:
    grey = np.asarray(picture.convert("L"))
    height, width = grey.shape
    if width > _WORK_WIDTH:
        size = (_WORK_WIDTH, max(2, round(height * _WORK_WIDTH / width)))
        grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
    return grey
