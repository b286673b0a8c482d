"""A neural voice for the dialogue, with espeak-ng as the fallback.

The voice is hibari (``hibari-tts``): a small acoustic model distilled from Kokoro-82M's
``af_heart`` voice (American English, female), 7.9 MB of int8 ONNX inside the wheel with
its lexicon and grapheme-to-phoneme nets, run by onnxruntime at about 100x real time on
one core. The wheel ships that one voice; its other voices are downloads, which kinema
never makes. A male speaker is the same model with its output reshaped before the
waveform is made: the pitch track lowered by ``_MALE_PITCH`` and the spectral envelope
compressed by ``_MALE_FORMANTS`` (the formants of a longer vocal tract). A whisper is
the model's own spectrum with the voicing removed (pitch track zero: noise only).

The voice also says which sounds it speaks and when (``Phone``): the model predicts each
phoneme's duration before it makes the spectrum, and the session is built with that
tensor as an extra output (the graph is read with ``onnx`` and one output added; the
weights are the wheel's own). A talking face shapes its mouth from them.

hibari speaks English only. When hibari or onnxruntime cannot be loaded, or the text has
nothing it can say (another language), the line is spoken by espeak-ng
(``soundtrack.speak``).

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

from kinema.engines.sound.phones import Phone, ipa

__all__ = ["NEURAL_SAMPLE_RATE", "Speaker", "neural_voice", "speaker_for"]

Speaker = Literal["female", "male"]
NEURAL_SAMPLE_RATE = 24_000
_MALE_PITCH = 0.60
_MALE_FORMANTS = 0.86
_SPEED_RANGE = (0.5, 2.0)
_HOP = 300  # samples per spectrum frame of the model (12.5 ms)
_DURATION_UNIT = 2 * _HOP  # samples per unit of the model's predicted durations
_FIRST_UNITS = 3  # the first sound's share of the leading pad's slot
_DURATIONS = "/Cast_32_output_0"  # the predicted durations (int64, one per input id)

_FEMALE = re.compile(
    r"\b(?:she|her|hers|herself|woman|women|girl|girls|lady|ladies|mother|mom|mum|grandmother"
    r"|grandma|queen|wife|daughter|sister|aunt|actress|waitress|princess|bride|female)\b"
)
_MALE = re.compile(
    r"\b(?:he|him|his|himself|man|men|boy|boys|guy|gentleman|father|dad|grandfather|grandpa"
    r"|king|husband|son|brother|uncle|actor|waiter|prince|groom|male)\b"
)
# Chinese has no spaces between words: the characters themselves
_FEMALE_ZH = re.compile("她|女|妈|母|姐|妹|奶奶|妻|娘|婆")
_MALE_ZH = re.compile("他|男|爸|父|哥|弟|爷|丈夫|先生")


def speaker_for(before: str, prompt: str) -> Speaker | None:
    """The speaker the words ``before`` a line name (the nearest word wins), else the
    first one the whole ``prompt`` names, else None."""
    for text in (before, prompt):
        lower = text.lower()
        found = [(m.start(), "female") for p in (_FEMALE, _FEMALE_ZH) for m in p.finditer(lower)]
        found += [(m.start(), "male") for p in (_MALE, _MALE_ZH) for m in p.finditer(lower)]
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
    ) -> tuple[np.ndarray, tuple[Phone, ...]]:
        """Mono float32 speech at 24 kHz and the phones in it (seconds from its start);
        empty when the text has nothing to say."""
        rng = np.random.default_rng(seed)
        speed = float(np.clip(speed, *_SPEED_RANGE))
        with self.lock:  # the G2P keeps caches: one sentence at a time
            chunks = self.model.phonemize(text)
            id_lists = [(chunk, self.model.ids(chunk)) for chunk in chunks]
        parts: list[np.ndarray] = []
        phones: list[Phone] = []
        at = 0
        for chunk, ids in id_lists:
            if len(ids) < 3:
                continue
            outputs = self.model.sess.run(
                None,
                {
                    "ids": np.asarray([ids], np.int64),
                    "speed": np.asarray([speed], np.float32),
                },
            )
            lh, theta, ln, lr, phi, f0 = (np.asarray(out[0], np.float32) for out in outputs[:6])
            f0 = f0 * pitch
            if speaker == "male":
                lh, theta, ln, lr, phi = (_squeeze(part) for part in (lh, theta, ln, lr, phi))
                f0 = f0 * _MALE_PITCH
            if whisper:
                f0 = np.zeros_like(f0)
                ln = ln + 1.0  # breath in place of the voice
            parts.append(self.dsp.synth(lh, theta, ln, lr, phi, f0, rng))
            if len(outputs) > 6:
                symbols = [char for char in chunk if char in self.model.vocab]
                phones += _timed(symbols, np.asarray(outputs[6]).reshape(-1), at)
            at += parts[-1].size
        if not parts:
            return np.zeros(0, np.float32), ()
        return np.concatenate(parts).astype(np.float32), tuple(phones)


def _timed(symbols: list[str], durations: np.ndarray, at: int) -> list[Phone]:
    """Phones from the model's input symbols and its predicted durations, ``at`` samples
    into the speech.

    The model's decoder sounds each symbol one slot early: the audio of symbol ``k`` lies
    in the frames of duration ``k`` (the first being the leading pad's), as its spectrum
    shows (a stop's silent closure where the slot before it sits, the vowel in the slot
    of the stress mark before it). So symbol ``k`` is timed by duration ``k``; the first
    one, which shares its slot with the silence before the speech, keeps only its last
    ``_FIRST_UNITS``. A stress mark belongs to the sound after it, a length mark to the
    sound before; spaces and punctuation are pauses.
    """
    phones: list[Phone] = []
    cursor = at
    stress_from: int | None = None  # where a stress mark waiting for its sound began
    for index, (symbol, duration) in enumerate(zip(symbols, durations, strict=False)):
        end = cursor + int(duration) * _DURATION_UNIT
        if index == 0:
            cursor = max(cursor, end - _FIRST_UNITS * _DURATION_UNIT)
        if symbol in "ˈˌ":
            stress_from = cursor if stress_from is None else stress_from
        elif symbol == "ː" and phones:
            phones[-1] = Phone(phones[-1].symbol, phones[-1].start_s, end / NEURAL_SAMPLE_RATE)
        else:
            start = cursor if stress_from is None else stress_from
            sound = ipa(symbol) if symbol.isalpha() else ""
            phones.append(Phone(sound, start / NEURAL_SAMPLE_RATE, end / NEURAL_SAMPLE_RATE))
            stress_from = None
        cursor = end
    return phones


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
        model.sess = _with_durations(model.model_path) or model.sess
    except (OSError, RuntimeError):
        return None
    return NeuralVoice(model=model, dsp=dsp, lock=threading.Lock())


def _with_durations(path: str) -> Any:
    """A session of the model at ``path`` that also returns its phoneme durations, or
    None when ``onnx`` is missing or the graph has no such tensor."""
    try:
        import onnx
        import onnxruntime
    except ImportError:
        return None
    graph = onnx.load(path)
    if not any(_DURATIONS in node.output for node in graph.graph.node):
        return None
    graph.graph.output.append(onnx.helper.make_empty_tensor_value_info(_DURATIONS))
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(
        graph.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
