"""Continuing a camera move: the motion engine's entry point for extensions.

An extension starts on the last frame of the video it continues (``EngineRequest.image``)
and the executor passes an earlier frame too (``previous_frames``; a fifth of the source's
length before its end, where an eased move still shows). If
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

from kinema.engines.motion.camera import CameraMove, MoveKind, camera_move, choose_camera
from kinema.types import EngineRequest

__all__ = ["continued_move", "estimate_move"]

_WORK_WIDTH = 480  # frames are compared at this width: enough for a global motion estimate
_STILL = 0.0015  # below this relative change, the camera was not moving
_LATERAL_SHARE = 0.3  # a slide this large against the magnification reads as a pan or tilt


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
    (a picture without texture to follow).

    A dense affine fit (OpenCV's ECC, on a small copy first, then refined on a larger one)
    gives the magnification and how far the picture's centre slid.
    """
    a, b = _grey(earlier, _WORK_WIDTH), _grey(later, _WORK_WIDTH)
    if float(a.std()) < 2.0:
        return None
    # Coarse to fine: a small copy finds a large motion, the larger one refines it.
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 100, 1e-5)
    matrix = np.eye(2, 3, dtype=np.float32)
    coarse = _WORK_WIDTH // 4
    try:
        small_a, small_b = _grey(earlier, coarse), _grey(later, coarse)
        _, found = cv2.findTransformECC(small_a, small_b, matrix, cv2.MOTION_AFFINE, criteria)
        matrix = np.asarray(found, dtype=np.float32)
        matrix[:, 2] *= a.shape[1] / small_a.shape[1]
        _, found = cv2.findTransformECC(a, b, matrix, cv2.MOTION_AFFINE, criteria)
    except cv2.error:
        return None
    matrix = np.asarray(found, dtype=np.float32)
    height, width = a.shape
    # ``matrix`` takes a point of ``earlier`` to where it shows in ``later``.
    forward = matrix.astype(np.float64)
    scale = math.sqrt(abs(float(np.linalg.det(forward[:, :2]))))
    centre = np.array([width / 2, height / 2, 1.0])
    shift_x, shift_y = forward @ centre - centre[:2]
    zoom = abs(math.log(scale))
    pan, tilt = abs(shift_x) / width, abs(shift_y) / height
    if max(zoom, pan, tilt) < _STILL:
        return "static"
    # Pans and tilts creep in as they travel, so a clear slide means a lateral move even
    # when the picture grew about as much; a push-in alone barely moves the centre.
    if max(pan, tilt) >= _LATERAL_SHARE * zoom and max(pan, tilt) >= _STILL:
        if pan >= tilt:  # the picture slides left when the camera turns right
            return "pan_right" if shift_x < 0 else "pan_left"
        return "tilt_down" if shift_y < 0 else "tilt_up"
    return "push_in" if scale > 1 else "pull_out"


def _grey(picture: Image.Image, work_width: int) -> np.ndarray:
    grey: np.ndarray = np.asarray(picture.convert("L"), dtype=np.float32)
    height, width = grey.shape
    if width > work_width:
        size = (work_width, max(2, round(height * work_width / width)))
        grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
    return cv2.GaussianBlur(grey, (5, 5), 0)
