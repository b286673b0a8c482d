"""From a Veo-style request (seconds, resolution, aspect ratio) to what a model can make.

Video diffusion models generate a few native frame sizes and frame counts of one form,
``step * k + 1`` (the VAE compresses ``step`` frames into one latent frame, plus the first
frame on its own). The worker hands an engine a duration at the catalog's frame rate and
a frame size from the resolution and aspect ratio; these functions map both onto the
model (the table is in docs/gpu.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Size = tuple[int, int]  # (width, height)


@dataclass(frozen=True)
class FrameRule:
    """Frame counts a model makes: ``step * k + 1`` with ``1 <= k`` and at most ``max_frames``."""

    step: int
    max_frames: int

    def fit(self, requested: int) -> int:
        """The allowed count nearest ``requested`` (ties go up), clamped to the model's range.

        Examples for ``step=4, max_frames=121``: 120 -> 121, 96 -> 97, 192 -> 121, 1 -> 5.
        """
        most = (self.max_frames - 1) // self.step
        blocks = math.floor((requested - 1) / self.step + 0.5)
        return self.step * min(max(blocks, 1), max(most, 1)) + 1


def fit_size(width: int, height: int, sizes: tuple[Size, ...]) -> Size:
    """The native size for a requested frame size.

    Among the sizes of the same orientation (landscape, portrait or square, falling back to
    all of them), the one nearest in pixel count on a log scale; on a tie, the larger.
    So 1280x720 and 1920x1080 both become Wan 2.2 TI2V's 1280x704, and 720x1280 its 704x1280.
    """
    if not sizes:
        raise ValueError("a model needs at least one native size")
    wanted = _orientation(width, height)
    candidates = [size for size in sizes if _orientation(*size) == wanted] or list(sizes)
    area = width * height
    return min(candidates, key=lambda size: (abs(math.log(size[0] * size[1] / area)), -size[0]))


def _orientation(width: int, height: int) -> int:
    return (width > height) - (width < height)
