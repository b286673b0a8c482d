"""Soundtracks from prompts: quoted dialogue spoken over an ambient bed.

Prompts in the Veo style put speech in quotes (``The woman says slowly: 'Well...'``). This
module finds those lines, reads delivery hints and the speaker from the words around them,
has them spoken by the neural voice (``voice``), or by espeak-ng where that cannot load
(through ctypes, on the library that the ``espeakng-loader`` wheel ships, so no system
package is needed), and lays them over the scene's ambience (``ambience``).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import re
import threading
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from kinema.engines.sound.ambience import BED_LEVEL_DBFS, ambience
from kinema.engines.sound.languages import line_language
from kinema.engines.sound.phones import Phone, ipa, shifted
from kinema.engines.sound.spoken import spoken_text
from kinema.engines.sound.voice import NEURAL_SAMPLE_RATE, Speaker, neural_voice, speaker_for
from kinema.errors import EngineError
from kinema.media.resample import resample
from kinema.types import Audio

__all__ = [
    "BED_LEVEL_DBFS",
    "Line",
    "Soundtrack",
    "SpokenLine",
    "build_soundtrack",
    "extract_dialogue",
    "make_soundtrack",
    "resample",
    "speak",
]

_SPEECH_DBFS = -16.0  # RMS of a line spoken at volume 1.0 (while it sounds)
_SPEECH_CEILING = 0.95  # peaks above this are rounded off
_DUCKING_DB = -6.0  # the ambience steps back while someone speaks
_EDGE_S = 0.1  # keep speech this far from the end of the clip
_GAP_S = 0.15  # silence between consecutive lines
_FADE_S = 0.005  # ramps at the edges of each line so they do not click

# --- dialogue -------------------------------------------------------------------------

# A quote opens after a non-word character and closes before one, so the apostrophes in
# "don't", "it's" or "Mona's" never open or close a line.
_QUOTED = re.compile(
    r"(?<!\w)\"(?=\S)(?P<straight_double>[^\"]+?)(?<=\S)\"(?!\w)"
    r"|\u201c(?P<curly_double>[^\u201d]+?)\u201d"
    r"|(?<!\w)\u2018(?=\S)(?P<curly_single>[^\u2018\"]{1,400}?)(?<=\S)\u2019(?!\w)"
    r"|(?<!\w)'(?=\S)(?P<straight_single>[^\"]{1,400}?)(?<=\S)'(?!\w)"
    r"|\u00ab\s*(?P<guillemets>[^\u00bb]+?)\s*\u00bb"
    r"|\u300c(?P<corner>[^\u300d]+?)\u300d"  # 「...」
    r"|\u300e(?P<white_corner>[^\u300f]+?)\u300f"  # 『...』
    # after a full-width colon, unquoted, to the end of the sentence: 她说：你好。
    r"|(?<=\uff1a)(?![\s\u201c\u300c\u300e\"'])(?P<after_colon>[^\uff1a\n\u201c\u300c\u300e]+?"
    r"(?:[\u3002\uff01\uff1f!?]|$))"
)
_SPEECH_CUE = re.compile(
    r"\b(?:say|says|said|saying|speak|speaks|asks?|asked|repl(?:y|ies|ied)|answers?"
    r"|whisper(?:s|ed|ing)?|shout(?:s|ed|ing)?|yell(?:s|ed|ing)?|scream(?:s|ed|ing)?"
    r"|calls?|murmurs?|mutters?|sings?|exclaims?|tells?|announces?|narrat\w*|voice\w*"
    r"|dialogue|cries|sighs?|laughs?|adds?|continues|declares?|states?)\b|[:\uff1a]\s*$"
    # Chinese: says, asks, answers, shouts, calls, whispers, murmurs, sings, reads out
    r"|说|道|问|答|喊|叫|嚷|低语|耳语|嘀咕|唱|念"
)
_SENTENCE_END = re.compile(r"[.!?;]")
_QUOTE_OPENERS = re.compile("[\"'\u201c\u2018\u00ab\u300c\u300e]")
_TERMINAL = re.compile(r"[.!?\u2026\u3002\uff01\uff1f]\W*$")
_HINT_BEFORE_CHARS = 80
_HINT_AFTER_CHARS = 40


@dataclass(frozen=True)
class _Delivery:
    pattern: re.Pattern[str]
    rate: float | None = None
    volume: float | None = None
    pitch: int | None = None
    whisper: bool = False


_DELIVERIES = (
    _Delivery(re.compile(r"\b(?:slow|slowly|drawls?|hesitantly|deliberately)\b"), rate=0.7),
    _Delivery(re.compile(r"\b(?:quick|quickly|fast|rapidly|hurriedly|hastily)\b"), rate=1.3),
    _Delivery(
        re.compile(r"\b(?:whisper\w*|hushed|under (?:her|his|their) breath)\b"),
        volume=0.5,
        rate=0.9,
        whisper=True,
    ),
    _Delivery(re.compile(r"\b(?:softly|quietly|murmur\w*|mutter\w*)\b"), volume=0.55),
    _Delivery(
        re.compile(r"\b(?:shout\w*|yell\w*|scream\w*|loudly|exclaims?|cries out|calls out)\b"),
        volume=1.0,
        rate=1.1,
        pitch=65,
    ),
)


@dataclass(frozen=True)
class Line:
    """One quoted line of speech found in a prompt, and how to say it."""

    text: str
    offset: int  # index in the prompt of the quote that opens the line
    rate: float = 1.0  # 1.0 is espeak's normal pace; 0.7 slow, 1.3 quick
    volume: float = 0.8  # 0..1 relative to the loudest delivery
    pitch: int = 50  # espeak pitch, 0..100
    whisper: bool = False
    hints: tuple[str, ...] = ()  # the delivery words that set the fields above, e.g. ("slowly",)
    speaker: Speaker | None = None  # who the words before the line name, if anyone


def extract_dialogue(prompt: str) -> list[Line]:
    """Find the quoted speech in ``prompt``, in order.

    Straight and curly, single and double quotes and guillemets all count. A quoted span
    counts as speech when a speech cue (``says``, ``whispers``, a colon...) sits just
    before or after it, or when it reads like a sentence (ends with ``.!?…`` or has four
    words or more): that keeps quoted terms such as a 'film noir' look out of the audio.
    Delivery hints come from the words around the line (``slowly``, ``whispers``...).
    """
    lines: list[Line] = []
    previous_end = 0
    for match in _QUOTED.finditer(prompt):
        text = next(group for group in match.groups() if group is not None).strip()
        before = prompt[max(previous_end, match.start() - _HINT_BEFORE_CHARS) : match.start()]
        before = before.lower()
        after = prompt[match.end() : match.end() + _HINT_AFTER_CHARS]
        after = _SENTENCE_END.split(_QUOTE_OPENERS.split(after)[0])[0]
        after = after.lower()
        previous_end = match.end()
        if not any(char.isalnum() for char in text):
            continue
        # Attribution usually comes first ("she whispers: '...'"); words after the quote
        # describe this line only when nothing before it does ("'...,' she whispers").
        context = before if _SPEECH_CUE.search(before) else f"{before} {after}"
        if _SPEECH_CUE.search(context) or _reads_like_speech(text):
            line = _with_delivery(text, match.start(), context)
            speaker = speaker_for(prompt[: match.start()], prompt)
            lines.append(replace(line, speaker=speaker))
    return lines


def _reads_like_speech(text: str) -> bool:
    return bool(_TERMINAL.search(text)) or len(text.split()) >= 4


def _with_delivery(text: str, offset: int, context: str) -> Line:
    fields: dict[str, float | int | bool] = {}
    hints: list[str] = []
    for delivery in _DELIVERIES:
        found = delivery.pattern.search(context)
        if found is None:
            continue
        hints.append(found.group(0))
        for name in ("rate", "volume", "pitch"):
            value = getattr(delivery, name)
            if value is not None:
                fields[name] = value
        if delivery.whisper:
            fields["whisper"] = True
    return Line(text=text, offset=offset, hints=tuple(hints), **fields)  # type: ignore[arg-type]


# --- speech ---------------------------------------------------------------------------

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_PARAM_RATE, _PARAM_PITCH = 1, 3
_ESPEAK_WPM = 175  # espeak's default pace, rate 1.0
_ESPEAK_WPM_RANGE = (80, 450)
_PHONEME_EVENTS = 0x0001 | 0x0002  # espeakINITIALIZE_PHONEME_EVENTS | ..._PHONEME_IPA
_EVENT_LIST_TERMINATED, _EVENT_PHONEME = 0, 7


class _Event(ctypes.Structure):
    """espeak-ng's ``espeak_EVENT``; for a phoneme event ``id`` holds its IPA name."""

    _fields_ = (
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),  # milliseconds
        ("sample", ctypes.c_int),  # samples from the start of the text
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_char * 8),
    )


_SYNTH_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)

# espeak-ng keeps its voice, parameters and output callback in process-wide C state and is
# not thread-safe: every use of the library, initialisation included, holds this lock.
_ESPEAK_LOCK = threading.Lock()


class _Espeak:
    """The espeak-ng library, initialised for synchronous synthesis into a callback."""

    def __init__(self) -> None:
        import espeakng_loader

        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SYNTH_CALLBACK]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        # The path names the folder that holds ``espeak-ng-data``.
        data_root = str(Path(espeakng_loader.get_data_path()).parent).encode()
        sample_rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, data_root, _PHONEME_EVENTS
        )
        if sample_rate <= 0:
            raise EngineError("espeak-ng failed to initialise")
        self.sample_rate = sample_rate
        self._lib = lib
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, str]] = []  # (sample, IPA name) of each phoneme
        self._callback = _SYNTH_CALLBACK(self._collect)  # must live as long as the library
        lib.espeak_SetSynthCallback(self._callback)

    def _collect(
        self, wav: ctypes._Pointer[ctypes.c_short], count: int, events: ctypes._Pointer[_Event]
    ) -> int:
        if count > 0 and wav:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        index = 0
        while events and events[index].type != _EVENT_LIST_TERMINATED:
            event = events[index]
            if event.type == _EVENT_PHONEME:
                self._events.append((event.sample, event.id.decode("utf-8", "replace")))
            index += 1
        return 0  # keep going

    def synthesise(
        self, text: str, voice: str, words_per_minute: int, pitch: int
    ) -> tuple[np.ndarray, tuple[Phone, ...]]:
        """16-bit samples and the phones in them."""
        if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise EngineError(f"espeak-ng has no voice {voice!r}")
        self._lib.espeak_SetParameter(_PARAM_RATE, words_per_minute, 0)
        self._lib.espeak_SetParameter(_PARAM_PITCH, pitch, 0)
        encoded = text.encode()
        self._chunks, self._events = [], []
        status = self._lib.espeak_Synth(
            encoded, len(encoded) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None
        )
        chunks, self._chunks = self._chunks, []
        events, self._events = self._events, []
        if status != 0:
            raise EngineError(f"espeak-ng failed to speak (status {status})")
        if not chunks:
            return np.zeros(0, dtype=np.int16), ()
        pcm = np.concatenate(chunks)
        return pcm, _phones(events, pcm.size, self.sample_rate)


def _phones(events: list[tuple[int, str]], length: int, sample_rate: int) -> tuple[Phone, ...]:
    """Each phoneme lasts from its event to the next one (the last, to the end)."""
    phones = []
    for (sample, name), (following, _) in zip(
        events, [*events[1:], (length, "")], strict=True
    ):
        if following > sample:
            phones.append(Phone(ipa(name), sample / sample_rate, following / sample_rate))
    return tuple(phones)


@functools.cache
def _espeak() -> _Espeak:
    """The one library handle of the process, created on first use (callers hold the lock)."""
    return _Espeak()


def speech_sample_rate() -> int:
    """Load espeak-ng (once) and return the rate it speaks at; fails early if it cannot."""
    with _ESPEAK_LOCK:
        return _espeak().sample_rate


def speak(
    text: str,
    rate: float = 1.0,
    *,
    volume: float = 1.0,
    pitch: int = 50,
    whisper: bool = False,
    voice: str = "en-us",
) -> Audio:
    """Speak ``text`` with espeak-ng: mono float32 at espeak's own rate (usually 22050 Hz).

    ``rate`` scales espeak's normal pace of 175 words a minute (within 80..450), ``volume``
    scales espeak's own level, ``whisper`` uses the whisper variant of ``voice``.
    """
    audio, _ = speak_timed(text, rate, volume=volume, pitch=pitch, whisper=whisper, voice=voice)
    return audio


def speak_timed(
    text: str,
    rate: float = 1.0,
    *,
    volume: float = 1.0,
    pitch: int = 50,
    whisper: bool = False,
    voice: str = "en-us",
) -> tuple[Audio, tuple[Phone, ...]]:
    """``speak``, and the phones spoken (seconds from the start of the audio)."""
    low, high = _ESPEAK_WPM_RANGE
    words_per_minute = int(np.clip(round(_ESPEAK_WPM * rate), low, high))
    name = f"{voice}+whisper" if whisper else voice
    with _ESPEAK_LOCK:
        engine = _espeak()
        pcm, phones = engine.synthesise(text, name, words_per_minute, int(np.clip(pitch, 0, 100)))
        sample_rate = engine.sample_rate
    samples = (pcm.astype(np.float32) / 32768.0) * float(volume)
    return Audio(samples=samples[np.newaxis, :], sample_rate=sample_rate), phones


# --- resampling -----------------------------------------------------------------------


# --- soundtrack -----------------------------------------------------------------------

_RATE_RANGE = (0.5, 2.0)  # how far a line's pace may be pushed to fit (neural voice)


@dataclass(frozen=True)
class SpokenLine:
    """Where a line landed in the track, who spoke it, and the sounds in it."""

    line: Line
    start_s: float
    end_s: float
    voice: str  # "neural-female", "espeak-male", "espeak-cmn-female"...
    phones: tuple[Phone, ...] = ()  # seconds from the start of the track


@dataclass(frozen=True)
class Soundtrack:
    """The mixed track, the voice alone (mono, same rate) for lip movement, and notes on
    what could not be done (a line in a language no voice here speaks)."""

    audio: Audio
    speech: np.ndarray
    lines: tuple[SpokenLine, ...]
    notes: tuple[str, ...] = ()

    @property
    def phones(self) -> tuple[Phone, ...]:
        """Every phone of every line, in order, in seconds from the start of the track."""
        return tuple(phone for line in self.lines for phone in line.phones)


def build_soundtrack(prompt: str, duration_s: float, seed: int, sample_rate: int = 48_000) -> Audio:
    """The stereo track of ``make_soundtrack``."""
    return make_soundtrack(prompt, duration_s, seed, sample_rate).audio


def make_soundtrack(
    prompt: str, duration_s: float, seed: int, sample_rate: int = 48_000
) -> Soundtrack:
    """A stereo track of ``duration_s``: the scene's ambience plus the dialogue.

    The ambience depends only on the prompt's scene words and ``seed`` (same inputs, same
    samples; see ``ambience``). It steps back by 6 dB while a line is spoken. The neural
    voice is deterministic for a seed too; espeak-ng, the fallback, can differ by a
    millisecond or so from one call to the next (its pitch flutter runs on between calls).
    English lines are spoken by the neural voice, lines in Chinese (and the other scripts
    of ``languages``) by espeak-ng's voice for that language; a line in a script no voice
    here speaks is left out and said so in ``notes``.

    Placement rule: a line starts where its quote sits in the prompt, in proportion,
    ``start = offset / len(prompt) * duration_s``; it is pushed back to start at least
    0.15 s after the previous line ends, then pulled forward so it ends 0.1 s before the
    clip does (never earlier than 0 s). A line longer than the clip allows is spoken
    faster (up to twice the pace) and, if still too long, cut with a short fade.
    """
    num_samples = round(duration_s * sample_rate)
    rng = np.random.default_rng(_seed_for(prompt, seed))
    bed = ambience(prompt, num_samples, sample_rate, rng)
    voice = np.zeros(num_samples, np.float32)
    speaking = np.zeros(num_samples, np.float32)
    placed_lines: list[SpokenLine] = []
    notes: list[str] = []
    cursor = 0.0
    for line in extract_dialogue(prompt):
        language = line_language(line.text)
        if language is None:
            notes.append(f"not spoken (no voice here speaks its language): {line.text!r}")
            continue
        spoken = _spoken_line(line, language, duration_s - 2 * _EDGE_S, sample_rate, seed)
        speech = spoken.samples
        length_s = speech.shape[-1] / sample_rate
        ideal = line.offset / max(len(prompt), 1) * duration_s
        earliest = cursor + _GAP_S if placed_lines else 0.0
        start_s = max(0.0, min(max(ideal, earliest), duration_s - _EDGE_S - length_s))
        start = round(start_s * sample_rate)
        end = min(num_samples, start + speech.shape[-1])
        voice[start:end] += speech[: end - start]
        speaking[start:end] = 1.0
        cursor = end / sample_rate
        phones = shifted(spoken.phones, start / sample_rate)
        placed_lines.append(
            SpokenLine(line, start / sample_rate, cursor, spoken.voice, _until(phones, cursor))
        )
    # Duck the ambience under speech, easing in and out over about a tenth of a second.
    speaking = _smooth(_smooth(speaking, sample_rate // 20), sample_rate // 20)
    ducking = 1.0 - (1.0 - 10 ** (_DUCKING_DB / 20)) * speaking
    track = bed * ducking + voice
    np.clip(track, -1.0, 1.0, out=track)
    audio = Audio(samples=track.astype(np.float32), sample_rate=sample_rate)
    return Soundtrack(audio, voice, tuple(placed_lines), tuple(notes))


def _until(phones: tuple[Phone, ...], end_s: float) -> tuple[Phone, ...]:
    """The phones that start before ``end_s``, the last one cut there."""
    kept = [phone for phone in phones if phone.start_s < end_s]
    return tuple(replace(phone, end_s=min(phone.end_s, end_s)) for phone in kept)


def _smooth(signal: np.ndarray, width: int) -> np.ndarray:
    """Moving average over ``width`` samples (centred), through a running sum."""
    if width < 2 or signal.size == 0:
        return signal
    padded = np.pad(signal.astype(np.float64), (width // 2, width - width // 2), mode="edge")
    sums = np.cumsum(padded)
    return ((sums[width:] - sums[:-width]) / width)[: signal.size].astype(np.float32)


def _seed_for(prompt: str, seed: int) -> int:
    digest = hashlib.sha256(f"{seed}\x00{prompt}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


@dataclass(frozen=True)
class _Spoken:
    """A line's speech at the track's rate, the voice that spoke it, its phones (seconds
    from the start of ``samples``)."""

    samples: np.ndarray
    voice: str
    phones: tuple[Phone, ...]


def _spoken_line(
    line: Line, language: str, room_s: float, sample_rate: int, seed: int
) -> _Spoken:
    """The line at ``sample_rate``, levelled to its volume, fitting in ``room_s``."""
    rate = line.rate
    spoken = _say(line, language, rate, sample_rate, seed)
    room = max(1, int(room_s * sample_rate))
    if spoken.samples.size > room:
        neural = spoken.voice.startswith("neural")
        fastest = _RATE_RANGE[1] if neural else _ESPEAK_WPM_RANGE[1] / _ESPEAK_WPM
        rate = min(rate * spoken.samples.size / room * 1.05, fastest)
        spoken = _say(line, language, rate, sample_rate, seed)
    speech, cut = _trimmed(spoken.samples, sample_rate)
    phones = shifted(spoken.phones, -cut / sample_rate)
    if speech.size > room:
        speech = speech[:room].copy()
        fade = min(room, int(0.05 * sample_rate))
        speech[room - fade :] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    phones = tuple(phone for phone in _until(phones, speech.size / sample_rate) if phone.end_s > 0)
    level = _active_rms(speech, sample_rate)
    if level > 0.0:
        target = 10 ** (_SPEECH_DBFS / 20) * line.volume
        speech *= target / level
        speech = _SPEECH_CEILING * np.tanh(speech / _SPEECH_CEILING)  # a soft limiter
    ramp = min(speech.size // 2, int(_FADE_S * sample_rate))
    if ramp:
        speech[:ramp] *= np.linspace(0.0, 1.0, ramp, dtype=np.float32)
        speech[-ramp:] *= np.linspace(1.0, 0.0, ramp, dtype=np.float32)
    return _Spoken(speech, spoken.voice, phones)


def _blocks(speech: np.ndarray, sample_rate: int) -> np.ndarray:
    """RMS of each 20 ms block."""
    size = max(1, sample_rate // 50)
    count = speech.size // size
    if count == 0:
        return np.zeros(0, np.float64)
    blocks = speech[: count * size].reshape(count, size).astype(np.float64)
    return np.sqrt(np.mean(np.square(blocks), axis=1))


def _active_rms(speech: np.ndarray, sample_rate: int) -> float:
    """RMS while the voice sounds: over the 20 ms blocks within 20 dB of the loudest."""
    levels = _blocks(speech, sample_rate)
    if levels.size == 0 or levels.max() <= 0.0:
        return 0.0
    active = levels[levels >= 0.1 * levels.max()]
    return float(np.sqrt(np.mean(np.square(active))))


def _trimmed(speech: np.ndarray, sample_rate: int) -> tuple[np.ndarray, int]:
    """Without the silence before the first and after the last sound (40 dB under the
    loudest block), keeping 30 ms on either side; and how many samples went from the
    start."""
    levels = _blocks(speech, sample_rate)
    if levels.size == 0 or levels.max() <= 0.0:
        return speech, 0
    loud = np.flatnonzero(levels >= 0.01 * levels.max())
    size, keep = max(1, sample_rate // 50), int(0.03 * sample_rate)
    start = max(0, loud[0] * size - keep)
    end = min(speech.size, (loud[-1] + 1) * size + keep)
    return speech[start:end].copy(), int(start)


def _say(line: Line, language: str, rate: float, sample_rate: int, seed: int) -> _Spoken:
    """Speak with the neural voice when the line is English and it loads and says
    something, else with espeak-ng's voice for the line's language."""
    speaker: Speaker = line.speaker or "female"
    text = spoken_text(line.text)
    neural = neural_voice() if language == "en" else None
    if neural is not None:
        samples, phones = neural.say(
            text,
            speed=rate,
            speaker=speaker,
            pitch=2 ** ((line.pitch - 50) / 100),
            whisper=line.whisper,
            seed=seed,
        )
        if samples.size:
            spoken = Audio(samples[np.newaxis, :], NEURAL_SAMPLE_RATE)
            samples = resample(spoken, sample_rate).samples[0].copy()
            return _Spoken(samples, f"neural-{speaker}", phones)
    base = "en-us" if language == "en" else language
    variant = base if line.whisper else f"{base}+{'f3' if speaker == 'female' else 'm3'}"
    audio, phones = speak_timed(text, rate, pitch=line.pitch, whisper=line.whisper, voice=variant)
    samples = resample(audio, sample_rate).samples[0].copy()
    name = "espeak" if language == "en" else f"espeak-{language}"
    return _Spoken(samples, f"{name}-{speaker}", phones)
