"""A neural voice for the dialogue, with espeak-ng as the fallback.

The voice is hibari (``hibari-tts``): a small acoustic model distilled from Kokoro-82M's
``af_heart`` voice (American English, female), 7.9 MB of int8 ONNX inside the wheel with
its lexicon and grapheme-to-phoneme nets, run by onnxruntime at about 100x real time on
one core. The wheel ships that one voice; its other voices are downloads, which kinema
never makes. A male speaker is the same model with its output reshaped before the
waveform is made: the pitch track lowered by ``_MALE_PITCH`` and the spectral envelope
compressed by ``_MALE_FORMANTS`` (the formants of a longer vocal tract). A whisper is
the model's own spectrum with the voicing removed (pitch track zero: noise only).

When hibari or onnxruntime cannot be loaded, or the text has nothing it can say, the line
is spoken by espeak-ng (``audio.speak``) with a female or male variant.

Which speaker says a line comes from the words before it (``speaker_for``): "the
woman", "she", "her"... or "the man", "he", "his"...; without any, the female voice.
"""

from __future__ import annotations

import functools
import re
import threading
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

__all__ = ["NEURAL_SAMPLE_RATE", "Speaker", "neural_voice", "speaker_for"]

Speaker = Literal["female", "male"]
NEURAL_SAMPLE_RATE = 24_000
_MALE_PITCH = 0.60
_MALE_FORMANTS = 0.86
_SPEED_RANGE = (0.5, 2.0)

_FEMALE = re.compile(
    r"\b(?:she|her|hers|herself|woman|women|girl|girls|lady|ladies|mother|mom|mum|grandmother"
    r"|grandma|queen|wife|daughter|sister|aunt|actress|waitress|princess|bride|female)\b"
)
_MALE = re.compile(
    r"\b(?:he|him|his|himself|man|men|boy|boys|guy|gentleman|father|dad|grandfather|grandpa"
    r"|king|husband|son|brother|uncle|actor|waiter|prince|groom|male)\b"
)


def speaker_for(before: str, prompt: str) -> Speaker | None:
    """The speaker the words ``before`` a line name (the nearest word wins), else the
    first one the whole ``prompt`` names, else None."""
    for text in (before, prompt):
        found = [(m.start(), "female") for m in _FEMALE.finditer(text.lower())]
        found += [(m.start(), "male") for m in _MALE.finditer(text.lower())]
        if found:
            position = max if text is before else min
            return position(found)[1]  # type: ignore[return-value]
    return None


@dataclass
class NeuralVoice:
    """hibari's model, loaded once; ``say`` is safe to call from several threads."""

    model: Any  # hibari.Hibari
    dsp: Any  # hibari.dsp
    lock: threading.Lock

    def say(
        self,
        text: str,
        *,
        speed: float = 1.0,
        speaker: Speaker = "female",
        pitch: float = 1.0,
        whisper: bool = False,
        seed: int = 0,
    ) -> np.ndarray:
        """Mono float32 speech at 24 kHz; empty when the text has nothing to say."""
        rng = np.random.default_rng(seed)
        speed = float(np.clip(speed, *_SPEED_RANGE))
        with self.lock:  # the G2P keeps caches: one sentence at a time
            chunks = self.model.phonemize(text)
            id_lists = [self.model.ids(chunk) for chunk in chunks]
        parts = []
        for ids in id_lists:
            if len(ids) < 3:
                continue
            outputs = self.model.sess.run(
                None,
                {
                    "ids": np.asarray([ids], np.int64),
                    "speed": np.asarray([speed], np.float32),
                },
            )
            lh, theta, ln, lr, phi, f0 = (np.asarray(out[0], np.float32) for out in outputs)
            f0 = f0 * pitch
            if speaker == "male":
                lh, theta, ln, lr, phi = (_squeeze(part) for part in (lh, theta, ln, lr, phi))
                f0 = f0 * _MALE_PITCH
            if whisper:
                f0 = np.zeros_like(f0)
                ln = ln + 1.0  # breath in place of the voice
            parts.append(self.dsp.synth(lh, theta, ln, lr, phi, f0, rng))
        if not parts:
            return np.zeros(0, np.float32)
        return np.concatenate(parts).astype(np.float32)


def _squeeze(spectrum: np.ndarray) -> np.ndarray:
    """Move spectral features down in frequency by ``_MALE_FORMANTS`` (bins x frames)."""
    bins = spectrum.shape[0]
    source = np.arange(bins, dtype=np.float32) / _MALE_FORMANTS
    low = np.minimum(source.astype(np.int64), bins - 1)
    high = np.minimum(low + 1, bins - 1)
    weight = (source - low)[:, np.newaxis]
    warped = spectrum[low] * (1 - weight) + spectrum[high] * weight
    beyond = source > bins - 1
    warped[beyond] = spectrum[-1]
    return warped.astype(np.float32)


@functools.cache
def neural_voice() -> NeuralVoice | None:
    """The neural voice of the process, or None when its packages are missing."""
    try:
        from hibari import Hibari, dsp
    except ImportError:
        return None
    try:
        model = Hibari()  # the voice inside the wheel: never downloads
        model.g2p  # load the G2P now, not during the first job  # noqa: B018
    except (OSError, RuntimeError):
        return None
    return NeuralVoice(model=model, dsp=dsp, lock=threading.Lock())
