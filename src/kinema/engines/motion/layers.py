"""Depth layers for a 2.5D camera: the subject cut out, the background filled in behind it.

Separation is OpenCV's GrabCut (a colour-model graph cut, no learned weights) on a copy of
the picture at most ``_WORK_SIDE`` pixels wide, seeded by what is known about the subject:

- **a person** where a face was found: the face is surely foreground, the head and a
  body below it (shoulders widening towards the bottom of the picture) probably are, and
  the parts of the picture far to the sides and above the head surely are not;
- **the salient region** otherwise: a spectral-residual saliency map (Hou and Zhang,
  2007) marks what stands out as probable foreground, the picture's border as background,
  and a result that is too small or too large to be an object is dropped (no layers: the
  camera films the picture flat).

The background behind the subject is filled from the background itself: the cut (its
enclosed holes filled, so the dark inside of a collar or a sleeve counts as the subject)
is grown by a wide margin, so that no fringe pixel of the subject is a source, and the
hole is filled on a small copy by a push-pull pyramid (each level the average of the
known pixels below it, the hole taking the coarsest levels that reach past it): smooth
colours of the surrounding background, without the streaks that propagating the hole's
edge inward drags in. The fill is laid only into the subject's region, so the rest of
the background keeps the picture's own pixels. The cut-out's edge is feathered by a
small blur.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
from PIL import Image

from kinema.engines.motion.faces import Face

__all__ = ["Layers", "separate"]

_WORK_SIDE = 280  # GrabCut runs at this size (longer side)
_FILL_SIDE = 200  # inpainting runs at this size
_ITERATIONS = 2
_FLAT_SHARE = 0.5  # pictures with more flat pixels than this are dithered before GrabCut
_MIN_AREA, _MAX_AREA = 0.03, 0.65  # a salient subject's share of the picture
_FEATHER = 0.006  # blur of the cut-out's edge, fraction of the longer side
_BEHIND = 0.012  # the fill covers this far (fraction of the side) past the subject
_TRUST = 8.0  # a pyramid cell an eighth known keeps its own average (the nearest colours)
_REVEAL = 0.06  # the fill is drawn from this far (fraction of the side) past the subject


@dataclass(frozen=True)
class Layers:
    """The subject and what lies behind it, both the size of the picture."""

    background: Image.Image  # the picture with the subject's region filled in
    alpha: np.ndarray  # (h, w) uint8: 255 on the subject, 0 off it, feathered between
    kind: Literal["person", "salient"]

    @property
    def box(self) -> tuple[int, int, int, int]:
        """Left, top, right, bottom (exclusive) of the subject's visible pixels."""
        rows = np.flatnonzero(self.alpha.max(axis=1))
        cols = np.flatnonzero(self.alpha.max(axis=0))
        return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def separate(picture: Image.Image, faces: list[Face] | tuple[Face, ...]) -> Layers | None:
    """Cut the subject out of ``picture`` (the people in ``faces``, else what stands out).

    Returns None when no subject separates from the background. Deterministic.
    """
    rgb = np.asarray(picture.convert("RGB"))
    height, width = rgb.shape[:2]
    scale = min(1.0, _WORK_SIDE / max(width, height))
    small_size = (max(8, round(width * scale)), max(8, round(height * scale)))
    small = cv2.resize(rgb, small_size, interpolation=cv2.INTER_AREA)
    seeds: np.ndarray | None
    if faces:
        seeds = _person_seeds(small.shape[:2], [face.scaled(scale, scale) for face in faces])
        kind: Literal["person", "salient"] = "person"
    else:
        seeds = _salient_seeds(small)
        kind = "salient"
        if seeds is None:
            return None
    assert seeds is not None
    mask = _grabcut(small, seeds)
    share = float(mask.mean())
    if kind == "salient" and not _MIN_AREA <= share <= _MAX_AREA:
        return None
    if share == 0.0:  # the cut found nothing: fall back on the seeds' own shape
        mask = np.isin(seeds, (cv2.GC_FGD, cv2.GC_PR_FGD)).astype(np.uint8)
    mask = _without_holes(mask)
    alpha = _feathered(mask, (width, height))
    background = _fill_behind(rgb, mask, alpha)
    return Layers(Image.fromarray(background, "RGB"), alpha, kind)


def _person_seeds(shape: tuple[int, int], faces: list[Face]) -> np.ndarray:
    height, width = shape
    seeds = np.full(shape, cv2.GC_PR_BGD, np.uint8)
    far = np.ones(shape, bool)  # away from every person: surely background
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    for face in faces:
        left, top, w, h = face.box
        cx, cy = left + w / 2, top + h / 2
        # body: from the chin down, shoulders about 2.6 face widths across, widening
        below = np.clip((ys - (top + h)) / max(h, 1.0), 0.0, None)
        half = w * (0.55 + 0.75 * np.minimum(below, 1.0) + 0.15 * below)
        body = (ys >= top + 0.8 * h) & (np.abs(xs - cx) <= half)
        head = ((xs - cx) / (0.62 * w)) ** 2 + ((ys - (cy - 0.12 * h)) / (0.78 * h)) ** 2 <= 1.0
        seeds[body | head] = cv2.GC_PR_FGD
        core = ((xs - cx) / (0.3 * w)) ** 2 + ((ys - cy) / (0.38 * h)) ** 2 <= 1.0
        # the neck and collar right under the chin are the person's, however dark (a
        # black collar looks like the shadows of the room to the colour models)
        neck = (np.abs(xs - cx) <= 0.4 * w) & (ys >= top + h) & (ys <= top + 1.6 * h)
        seeds[core | neck] = cv2.GC_FGD
        near = (np.abs(xs - cx) <= half + 1.2 * w) & (ys >= top - 0.9 * h)
        near |= ((xs - cx) / (1.4 * w)) ** 2 + ((ys - cy) / (1.5 * h)) ** 2 <= 1.0
        far &= ~near
    seeds[far & (seeds == cv2.GC_PR_BGD)] = cv2.GC_BGD
    return seeds


def _salient_seeds(small: np.ndarray) -> np.ndarray | None:
    saliency = _spectral_residual(small)
    height, width = saliency.shape
    seeds = np.full((height, width), cv2.GC_PR_BGD, np.uint8)
    threshold = float(saliency.mean() + 1.5 * saliency.std())
    salient = saliency > threshold
    if salient.mean() < 0.01:
        return None
    seeds[salient] = cv2.GC_PR_FGD
    border = max(2, round(0.03 * max(height, width)))
    seeds[:border, :] = seeds[-border:, :] = cv2.GC_BGD
    seeds[:, :border] = seeds[:, -border:] = cv2.GC_BGD
    return seeds


def _spectral_residual(rgb: np.ndarray) -> np.ndarray:
    """Saliency in [0, 1] at the picture's size: what the log spectrum does not predict."""
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    small = cv2.resize(grey, (64, 64), interpolation=cv2.INTER_AREA)
    spectrum = np.fft.fft2(small)
    log_amplitude = np.log(np.abs(spectrum) + 1e-6)
    residual = log_amplitude - cv2.blur(log_amplitude.astype(np.float32), (3, 3))
    saliency = np.abs(np.fft.ifft2(np.exp(residual + 1j * np.angle(spectrum)))) ** 2
    saliency = cv2.GaussianBlur(saliency.astype(np.float32), (0, 0), 2.5)
    saliency = cv2.resize(saliency, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_LINEAR)
    return saliency / max(float(saliency.max()), 1e-9)


def _grabcut(small: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """(h, w) uint8 0/1: the foreground GrabCut settles on (OpenCV's RNG reseeded first)."""
    mask = seeds.copy()
    if not np.isin(mask, (cv2.GC_FGD, cv2.GC_PR_FGD)).any():
        return np.zeros(mask.shape, np.uint8)
    if not np.isin(mask, (cv2.GC_BGD, cv2.GC_PR_BGD)).any():
        return np.ones(mask.shape, np.uint8)
    cv2.setRNGSeed(0)  # GrabCut's colour models start from k-means: keep them repeatable
    background = np.zeros((1, 65), np.float64)
    foreground = np.zeros((1, 65), np.float64)
    bgr = cv2.cvtColor(small, cv2.COLOR_RGB2BGR)
    bgr = _untied(bgr)
    cv2.grabCut(  # type: ignore[call-overload]
        bgr, mask, None, background, foreground, _ITERATIONS, cv2.GC_INIT_WITH_MASK
    )
    cut = np.isin(mask, (cv2.GC_FGD, cv2.GC_PR_FGD)).astype(np.uint8)
    # keep the parts that hold a certain seed (or, without one, are not specks)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(cut, connectivity=8)
    certain = seeds == cv2.GC_FGD
    keep = np.zeros(count, bool)
    if certain.any():
        keep[np.unique(labels[certain & (cut > 0)])] = True
        keep[0] = False
    else:
        least = 0.002 * cut.size
        for label in range(1, count):
            keep[label] = stats[label, cv2.CC_STAT_AREA] >= least
    return keep[labels].astype(np.uint8)


def _untied(bgr: np.ndarray) -> np.ndarray:
    """``bgr`` with a fixed, faint dither (at most 1 level either way) on its flat pixels,
    when most of it is flat.

    A picture that is nearly all one colour (a blank page, a logo on a plain ground)
    gives GrabCut's graph long runs of equal weights, on which its max-flow crawls: a
    plain white picture took a minute, a red dot on white 8 s. Photographs, even on a
    plain backdrop over most of the frame, cut in well under a second, and are left as
    they are (the cut GrabCut settles on for them does not change).
    """
    flat = np.zeros(bgr.shape[:2], bool)
    flat[:, 1:] = (bgr[:, 1:] == bgr[:, :-1]).all(axis=2)
    flat[1:, :] |= (bgr[1:] == bgr[:-1]).all(axis=2)
    if flat.mean() < _FLAT_SHARE:
        return bgr
    dither = np.random.default_rng(0).integers(-1, 2, bgr.shape, dtype=np.int16)
    dithered = np.clip(bgr.astype(np.int16) + dither, 0, 255).astype(np.uint8)
    return np.where(flat[..., np.newaxis], dithered, bgr)


def _without_holes(mask: np.ndarray) -> np.ndarray:
    """``mask`` with the background it encloses (parts not reaching the picture's edge)
    made subject: what a subject surrounds moves with it."""
    outside = 1 - mask
    _, labels = cv2.connectedComponents(outside, connectivity=4)
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    enclosed = ~np.isin(labels, edge) & (outside > 0)
    return (mask | enclosed).astype(np.uint8)


def _push_pull(pixels: np.ndarray, known: np.ndarray) -> np.ndarray:
    """``pixels`` with the unknown ones (``known`` 0) filled from the known ones around
    them: averages down a pyramid of the known pixels, then back up, each level keeping
    what it knows and taking the rest from the level below."""
    weight = known.astype(np.float32)
    levels: list[tuple[np.ndarray, np.ndarray]] = [
        (pixels.astype(np.float32) * weight[..., np.newaxis], weight)
    ]
    while min(levels[-1][1].shape) > 2:
        total, count = levels[-1]
        size = (max(1, total.shape[1] // 2), max(1, total.shape[0] // 2))
        levels.append(
            (
                cv2.resize(total, size, interpolation=cv2.INTER_AREA),
                cv2.resize(count, size, interpolation=cv2.INTER_AREA),
            )
        )
    total, count = levels[-1]
    filled = total.sum(axis=(0, 1)) / max(float(count.sum()), 1e-6) * np.ones_like(total)
    for total, count in reversed(levels):
        size = (total.shape[1], total.shape[0])
        coarse = cv2.resize(filled, size, interpolation=cv2.INTER_LINEAR)
        share = np.clip(count * _TRUST, 0.0, 1.0)[..., np.newaxis]
        own = total / np.maximum(count, 1e-6)[..., np.newaxis]
        filled = own * share + coarse * (1 - share)
    return filled


def _feathered(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    large = cv2.resize(mask.astype(np.float32), size, interpolation=cv2.INTER_LINEAR)
    sigma = max(1.0, _FEATHER * max(size))
    large = cv2.GaussianBlur(large, (0, 0), sigma)
    return np.clip(np.rint(large * 255), 0, 255).astype(np.uint8)


def _fill_behind(rgb: np.ndarray, mask: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """The picture with the subject replaced by an inpainted fill.

    The fill is drawn from beyond a margin around the subject (so its edge colours do not
    bleed in) and laid in over the subject and a thin band around it (so a subject that
    moves leaves no outline of itself behind); elsewhere the background keeps the
    picture's pixels.
    """
    height, width = rgb.shape[:2]
    side = max(mask.shape)
    grow = max(1, round(_REVEAL * side))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
    hole = cv2.dilate(mask, kernel)
    scale = min(1.0, _FILL_SIDE / max(width, height))
    fill_size = (max(8, round(width * scale)), max(8, round(height * scale)))
    tiny = cv2.resize(rgb, fill_size, interpolation=cv2.INTER_AREA)
    tiny_hole = cv2.resize(hole, fill_size, interpolation=cv2.INTER_NEAREST)
    filled = _push_pull(tiny, 1 - tiny_hole)
    filled = cv2.GaussianBlur(filled, (0, 0), 1.5)
    filled = cv2.resize(filled, (width, height), interpolation=cv2.INTER_CUBIC)
    # a little past the alpha's feather, so a moving subject leaves no outline behind
    edge = max(1, round(_BEHIND * side))
    cover = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * edge + 1,) * 2))
    weight = cv2.resize(cover.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    weight = cv2.GaussianBlur(weight, (0, 0), max(1.0, _FEATHER * max(width, height)))
    weight = np.maximum(weight, alpha.astype(np.float32) / 255.0)[..., np.newaxis]
    mixed = rgb.astype(np.float32) * (1 - weight) + filled.astype(np.float32) * weight
    return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
