"""The sounds a voice speaks and when: timed phones, in IPA.

Both voices report them. hibari's acoustic model predicts how long each phoneme of its
input lasts before it makes the spectrum; ``voice`` reads those durations from the model
(one unit is two 12.5 ms frames). espeak-ng reports a phoneme event, with its sample
position, for each phoneme it speaks (``espeakINITIALIZE_PHONEME_EVENTS``, IPA names).
The mouth of a talking face is shaped from them (``motion.visemes``).

hibari writes diphthongs and a few consonants as single letters (the misaki alphabet that
Kokoro uses: ``A`` for eɪ, ``O`` for oʊ...); they are written out in IPA here, so that
whoever reads a phone reads one alphabet.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Phone", "ipa", "shifted"]

_MISAKI = {
    "A": "eɪ",
    "I": "aɪ",
    "O": "oʊ",
    "W": "aʊ",
    "Y": "ɔɪ",
    "Q": "əʊ",
    "ᵊ": "ə",
    "ʤ": "dʒ",
    "ʧ": "tʃ",
    "T": "t",
}
_MARKS = "ˈˌː"  # stress and length marks: part of the sound they stand by


@dataclass(frozen=True)
class Phone:
    """One sound, ``symbol`` in IPA ("" for a pause), from ``start_s`` to ``end_s``."""

    symbol: str
    start_s: float
    end_s: float


def ipa(symbol: str) -> str:
    """``symbol`` (IPA or misaki) in plain IPA, without stress or length marks."""
    plain = "".join(char for char in symbol if char not in _MARKS)
    return "".join(_MISAKI.get(char, char) for char in plain)


def shifted(phones: tuple[Phone, ...], offset_s: float, scale: float = 1.0) -> tuple[Phone, ...]:
    """The phones ``offset_s`` later, their times first multiplied by ``scale``."""
    return tuple(
        Phone(phone.symbol, phone.start_s * scale + offset_s, phone.end_s * scale + offset_s)
        for phone in phones
    )
