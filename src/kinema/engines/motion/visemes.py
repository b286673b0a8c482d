"""Mouth shapes from the sounds the voice speaks (visemes), one per frame.

Each phone (``sound.phones.Phone``, IPA) asks for a shape of the mouth: how far it is
open (the jaw and the gap between the lips move together) and how the lip corners sit
(spread wide, or drawn in and rounded):

- lips pressed shut for the bilabials m, b, p; nearly shut for f and v;
- wide open for the open vowels (a, ɑ, æ, ʌ, ɒ);
- rounded, corners drawn in, for o, ɔ, u, ʊ, w (and ʃ, ʒ a little);
- spread, corners out, jaw nearly closed, for i, ɪ, j; half open for e, ɛ, ə;
- a neutral half-closed mouth for the other consonants, and at rest between lines.

A diphthong moves from its first vowel's shape to its last's. The targets are laid on a
200 Hz timeline, blended with a short Gaussian (coarticulation: a mouth is already on
its way to the next sound), and read at each frame's time. Bilabials dominate: the lips
close fully during them whatever their neighbours ask, and the frame nearest each one's
middle shows them shut, so a 30 ms "p" is never lost between two frames. Outside speech
the track is zero: a still mouth.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from kinema.engines.sound.phones import Phone

__all__ = ["MouthTrack", "mouth_track", "shape_of"]

_RATE = 200  # timeline samples per second
_BLEND_S = 0.022  # sigma of the coarticulation blend
_CLOSING_S = 0.05  # how far around a bilabial the lips are still closing or opening
_SHORT_PAUSE_S = 0.16  # a pause shorter than this (between words) keeps the mouth ready
_READY = (0.12, 0.0)

Shape = tuple[float, float]  # (open 0..1, spread -1 rounded .. +1 wide)

_BILABIALS = {"m", "b", "p", "ɱ", "ʙ", "ɓ"}
_SHAPES: dict[str, Shape] = {
    **dict.fromkeys(_BILABIALS, (0.0, 0.0)),
    **dict.fromkeys(["f", "v", "ʋ"], (0.06, 0.0)),
    **dict.fromkeys(["a", "ɑ", "æ", "ʌ", "ɐ", "ɒ", "ɶ", "ä"], (1.0, 0.15)),
    **dict.fromkeys(["ɛ", "e", "ɜ", "ɞ", "œ"], (0.6, 0.45)),
    **dict.fromkeys(["ə", "ɚ", "ɝ", "ɘ", "ɤ"], (0.45, 0.1)),
    **dict.fromkeys(["i", "ɪ", "ɨ", "j", "ɯ", "y"], (0.22, 1.0)),
    **dict.fromkeys(["o", "ɔ", "ɵ", "ø"], (0.5, -0.8)),
    **dict.fromkeys(["u", "ʊ", "w", "ʉ", "ʏ", "ɥ", "ʍ"], (0.22, -1.0)),
    **dict.fromkeys(["ʃ", "ʒ", "tʃ", "dʒ"], (0.16, -0.55)),
    **dict.fromkeys(["s", "z", "ts", "dz", "ɕ", "ʑ", "tɕ", "dʑ", "ʂ", "ʐ", "tʂ", "ʈʂ"], (0.1, 0.5)),
    **dict.fromkeys(["θ", "ð"], (0.22, 0.1)),
}
_VOWELS = set("aɑæʌɐɒɶäɛeɜɞœəɚɝɘɤiɪɨɯyoɔɵøuʊʉʏ")
_CONSONANT: Shape = (0.22, 0.0)  # t d n l k g ŋ h ɹ r χ x...
_REST: Shape = (0.0, 0.0)


@dataclass(frozen=True)
class MouthTrack:
    """Per frame: how open the mouth is (0..1; below 0 the lips are pressed together, -1
    shut) and how its corners sit (-1..1)."""

    open: np.ndarray
    spread: np.ndarray


def shape_of(symbol: str) -> list[tuple[float, Shape]]:
    """The shapes one phone asks for, each with its share of the phone's time."""
    if not symbol:
        return [(1.0, _REST)]
    if symbol in _SHAPES:
        return [(1.0, _SHAPES[symbol])]
    vowels = [char for char in symbol if char in _VOWELS]
    if len(vowels) >= 2:  # a diphthong: most of the time on the first vowel
        rest = 0.45 / (len(vowels) - 1)
        shares = [0.55] + [rest] * (len(vowels) - 1)
        return [(share, _SHAPES[vowel]) for share, vowel in zip(shares, vowels, strict=True)]
    for char in symbol:  # a consonant cluster or a marked sound: its main letter
        if char in _SHAPES:
            return [(1.0, _SHAPES[char])]
    return [(1.0, _CONSONANT)]


def mouth_track(phones: Sequence[Phone], fps: int, count: int) -> MouthTrack:
    """The mouth's shape on each of ``count`` frames, from the phones of the clip."""
    length = int(np.ceil(count / fps * _RATE)) + 1
    targets = np.zeros((length, 2), np.float32)
    closing = np.zeros(length, bool)
    for index, phone in enumerate(phones):
        start, end = _samples(phone.start_s, length), _samples(phone.end_s, length)
        if end <= start:
            continue
        if not phone.symbol:
            inside = 0 < index < len(phones) - 1
            short = phone.end_s - phone.start_s < _SHORT_PAUSE_S
            targets[start:end] = _READY if inside and short else _REST
            continue
        cursor = start
        for share, shape in shape_of(phone.symbol):
            stop = min(end, cursor + max(1, round(share * (end - start))))
            targets[cursor:stop] = shape
            cursor = stop
        if phone.symbol in _BILABIALS:
            closing[start:end] = True
    blended = cv2.GaussianBlur(targets, (1, 0), sigmaX=0, sigmaY=_BLEND_S * _RATE)
    if closing.any():  # the lips close fully on a bilabial, and open again after it
        distance = np.clip(_distance_to(closing) / (_CLOSING_S * _RATE), 0.0, 1.0)
        blended[:, 0] = blended[:, 0] * distance - (1.0 - distance)  # pressed: below 0
    times = np.minimum(np.round(np.arange(count) / fps * _RATE).astype(int), length - 1)
    opened = blended[times, 0].copy()
    spread = blended[times, 1].copy()
    for phone in phones:
        if phone.symbol in _BILABIALS:
            middle = round((phone.start_s + phone.end_s) / 2 * fps)
            if 0 <= middle < count:
                opened[middle] = -1.0
    return MouthTrack(np.clip(opened, -1.0, 1.0), np.clip(spread, -1.0, 1.0))


def _samples(seconds: float, length: int) -> int:
    return int(np.clip(round(seconds * _RATE), 0, length))


def _distance_to(mask: np.ndarray) -> np.ndarray:
    """For each timeline sample, how many samples away the nearest ``True`` one is."""
    where = np.flatnonzero(mask)
    positions = np.arange(mask.size)
    index = np.clip(np.searchsorted(where, positions), 1, where.size - 1) if where.size > 1 else 0
    if where.size == 1:
        return np.abs(positions - where[0]).astype(np.float32)
    nearest = np.minimum(np.abs(positions - where[index - 1]), np.abs(positions - where[index]))
    return nearest.astype(np.float32)
