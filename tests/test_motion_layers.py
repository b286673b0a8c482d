"""What a parallax move reveals behind the subject looks like the background around it.

On real photographs (scikit-image's astronaut portrait, cat and coffee cup), the subject
layer is moved over its background as the camera moves make it move (a pan left or
right, a tilt up or down: the subject travels further than the background behind it).
Where the subject stood and no longer stands, the background layer shows; each revealed
pixel is compared with the picture's own background around it (the mean of a window of
it, a ring from half to three times the move's travel away from the subject), and the
difference is weighed against how much that background varies itself. A dark or
coloured fringe dragged in from the subject's edge is far from the background around
it, a fill drawn from the background itself is not.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from kinema.engines.motion.faces import find_faces
from kinema.engines.motion.layers import Layers, separate

skimage_data = pytest.importorskip("skimage.data")

MOVES = {"pan left": (-25, 0), "pan right": (25, 0), "tilt up": (0, -20), "tilt down": (0, 20)}


def disk(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def revealed_mismatch(
    picture: Image.Image, layers: Layers, dx: int, dy: int
) -> tuple[float, float]:
    """(mean distance of the revealed pixels from the background around them, that
    distance over the background's own variation there)."""
    pixels = np.asarray(picture.convert("RGB")).astype(np.float32)
    background = np.asarray(layers.background).astype(np.float32)
    alpha = layers.alpha.astype(np.float32) / 255
    height, width = alpha.shape
    moved = cv2.warpAffine(alpha, np.float32([[1, 0, dx], [0, 1, dy]]), (width, height))
    revealed = (alpha > 0.5) & (moved < 0.02)
    travel = max(abs(dx), abs(dy))
    subject = (alpha > 0.05).astype(np.uint8)
    ring = (cv2.dilate(subject, disk(3 * travel)) > 0) & ~(
        cv2.dilate(subject, disk(travel // 2)) > 0
    )
    window = (8 * travel + 1, 8 * travel + 1)
    count = cv2.boxFilter(ring.astype(np.float32), -1, window, normalize=False)
    around = cv2.boxFilter(pixels * ring[..., None], -1, window, normalize=False)
    around /= np.maximum(count, 1e-3)[..., None]
    deviation = np.abs(pixels - around).mean(axis=2) * ring
    variation = cv2.boxFilter(deviation, -1, window, normalize=False) / np.maximum(count, 1e-3)
    measured = revealed & (count > 20)
    assert measured.sum() > 200, "the move revealed (almost) nothing"
    off = np.abs(background - around).mean(axis=2)[measured]
    return float(off.mean()), float(off.mean() / (variation[measured].mean() + 2.0))


@pytest.mark.parametrize("photo", ["astronaut", "chelsea", "coffee"])
def test_what_a_move_reveals_looks_like_the_background_around_it(photo: str):
    picture = Image.fromarray(getattr(skimage_data, photo)())
    layers = separate(picture, find_faces(picture))
    assert layers is not None

    found = {name: revealed_mismatch(picture, layers, *move) for name, move in MOVES.items()}
    for name, (distance, relative) in found.items():
        assert distance < 18 and relative < 0.5, (name, round(distance, 1), round(relative, 2))
