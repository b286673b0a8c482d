"""The ambient bed under a clip: scene sounds chosen by the prompt's words, made procedurally.

Each scene word picks a layer; every layer the prompt names is mixed, and the mix is
levelled to ``BED_LEVEL_DBFS`` RMS (a quiet room sits 10 dB lower). Everything is noise
shaped in the frequency domain and enveloped, drawn from one seeded generator, so the
same prompt and seed give the same samples.

| words | layer |
|---|---|
| sea, ocean, waves, beach, surf, tide | surf: deep noise swelling every ~7 s, hiss on the crests |
| rain, storm, drizzle, downpour, thunder | rain: a broad hiss and scattered drops |
| wind, breeze, gusts, blizzard, mountains, desert, cliffs | wind: band noise with gusts |
| city, street, traffic, cars, road, downtown | traffic: low rumble and cars passing left to right |
| birds, birdsong, forest, woods, garden, park, meadow | birds: chirps and trills over a faint air |
| fire, flames, campfire, fireplace, hearth | fire: low roar and crackles |
| crowd, market, cafe, restaurant, party, stadium | crowd: a babble of voices |
| quiet, silence, silent, library | room tone only, 10 dB lower |
| nothing of the above | room tone with a soft low drone |
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np

from kinema.chinese import in_english

__all__ = ["BED_LEVEL_DBFS", "QUIET_LEVEL_DBFS", "ambience", "scene_layers"]

BED_LEVEL_DBFS = -30.0  # RMS of the ambience: present, but well under speech
QUIET_LEVEL_DBFS = -40.0
_FADE_S = 0.3

Layer = Callable[[np.random.Generator, int, int], np.ndarray]

_SCENES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern))
    for name, pattern in (
        ("surf", r"\b(?:ocean|sea|seas|seaside|waves?|beach|shore|surf|coast\w*|tide)\b"),
        ("rain", r"\b(?:rain\w*|storm\w*|drizzl\w*|downpour|thunder\w*)\b"),
        (
            "wind",
            r"\b(?:wind|winds|windy|breez\w*|gust\w*|blizzard|mountains?|desert|dunes?|cliffs?)\b",
        ),
        (
            "traffic",
            r"\b(?:city|cities|street\w*|traffic|cars?|road|roads|downtown|urban|highway|avenue)\b",
        ),
        ("birds", r"\b(?:birds?|birdsong|chirp\w*|forest|woods|woodland|garden|park|meadow)\b"),
        ("fire", r"\b(?:fire|fires|flames?|campfire|fireplace|bonfire|hearth|crackl\w*)\b"),
        (
            "crowd",
            r"\b(?:crowd\w*|market\w*|caf[eé]s?|restaurant|party|stadium|audience|festival)\b",
        ),
        ("quiet", r"\b(?:quiet\w*|silence|silent|library)\b"),
    )
)


def scene_layers(prompt: str) -> list[str]:
    """The layers a prompt's words call for, in the table's order (empty: room tone); the
    Chinese words for them count too (``chinese``)."""
    words = in_english(prompt).lower()
    return [name for name, pattern in _SCENES if pattern.search(words)]


def ambience(
    prompt: str, num_samples: int, sample_rate: int, rng: np.random.Generator
) -> np.ndarray:
    """(2, n) float32 bed for ``prompt``, levelled and faded in and out."""
    if num_samples == 0:
        return np.zeros((2, 0), np.float32)
    names = scene_layers(prompt)
    sounding = [name for name in names if name != "quiet"]
    level = QUIET_LEVEL_DBFS if "quiet" in names and not sounding else BED_LEVEL_DBFS
    if not sounding:
        sounding = ["room"] if "quiet" in names else ["drone"]
    bed = np.zeros((2, num_samples), np.float32)
    for name in sounding:
        layer = _LAYERS[name](rng, num_samples, sample_rate)
        bed += layer / _rms(layer)
    bed *= 10 ** (level / 20) / _rms(bed)
    fade = min(num_samples // 2, int(_FADE_S * sample_rate))
    if fade:
        ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
        bed[:, :fade] *= ramp
        bed[:, -fade:] *= ramp[::-1]
    return bed.astype(np.float32)


# --- layers ----------------------------------------------------------------------------


def _surf(rng: np.random.Generator, n: int, rate: int) -> np.ndarray:
    seconds = np.arange(n) / rate
    swell = _swell(rng, seconds, period_s=7.0, depth=0.85)
    body = _noise(rng, n, rate, _brownish(150.0)) * swell
    hiss = _noise(rng, n, rate, _band(1500.0, 7000.0)) * swell**3
    return body + 0.2 * hiss / _rms(hiss) * _rms(body)


def _rain(rng: np.random.Generator, n: int, rate: int) -> np.ndarray:
    hiss = _noise(rng, n, rate, _band(700.0, 9000.0))
    drops = _impulses(rng, n, rate, per_second=35.0, decay_s=0.004)
    drops = _filtered(drops, rate, _band(1200.0, 8000.0))
    return hiss / _rms(hiss) + 0.6 * drops / _rms(drops)


def _wind(rng: np.random.Generator, n: int, rate: int) -> np.ndarray:
    seconds = np.arange(n) / rate
    return _noise(rng, n, rate, _band(250.0, 1200.0)) * _swell(rng, seconds, 4.0, 0.7)


def _traffic(rng: np.random.Generator, n: int, rate: int) -> np.ndarray:
    seconds = np.arange(n) / rate
    rumble = _noise(rng, n, rate, _brownish(110.0))
    rumble /= _rms(rumble)
    cars = np.zeros((2, n), np.float32)
    passing = _noise(rng, n, rate, _band(180.0, 2500.0))[0]
    at = float(rng.uniform(-1.0, 1.5))
    while at < seconds[-1] + 1.0:
        width = float(rng.uniform(0.8, 1.6))
        envelope = np.exp(-(((seconds - at) / width) ** 2))
        pan = np.clip((seconds - at) / (2 * width), -1.0, 1.0)  # left to right
        cars[0] += passing * envelope * np.sqrt((1 - pan) / 2)
        cars[1] += passing * envelope * np.sqrt((1 + pan) / 2)
        at += float(rng.uniform(1.2, 3.5))
    return rumble + 1.2 * cars / _rms(cars)


def _birds(rng: np.random.Generator, n: int, rate: int) -> np.ndarray:
    air = _noise(rng, n, rate, _band(2000.0, 6000.0))
    song = np.zeros((2, n), np.float32)
    at = float(rng.uniform(0.1, 0.8))
    while at < n / rate:
        base = float(rng.uniform(2600.0, 5200.0))
        sweep = float(rng.uniform(-1800.0, 1800.0))
        notes = int(rng.integers(2, 6))
        pan = float(rng.uniform(-0.8, 0.8))
        loud = float(rng.uniform(0.4, 1.0))
        for note in range(notes):
            length = float(rng.uniform(0.05, 0.12))
            start = int((at + note * length * 1.4) * rate)
            count = min(int(length * rate), n - start)
            if count <= 0:
                break
            t = np.arange(count) / rate
            frequency = base + sweep * t / length
            phase = 2 * np.pi * np.cumsum(frequency) / rate
            chirp = np.sin(phase) * np.sin(np.pi * t / length) ** 2 * loud
            song[0, start : start + count] += chirp * np.sqrt((1 - pan) / 2)
            song[1, start : start + count] += chirp * np.sqrt((1 + pan) / 2)
        at += float(rng.uniform(0.3, 1.6))
    return 0.15 * air / _rms(air) + song / _rms(song)


def _fire(rng: np.random.Generator, n: int, rate: int) -> np.ndarray:
    seconds = np.arange(n) / rate
    roar = _noise(rng, n, rate, _brownish(220.0)) * _swell(rng, seconds, 1.5, 0.4)
    crackle = _impulses(rng, n, rate, per_second=14.0, decay_s=0.003)
    crackle = _filtered(crackle, rate, _band(900.0, 9000.0))
    return roar / _rms(roar) + 0.9 * crackle / _rms(crackle)


def _crowd(rng: np.random.Generator, n: int, rate: int) -> np.ndarray:
    seconds = np.arange(n) / rate
    babble = np.zeros((2, n), np.float32)
    for _ in range(10):
        voice = _noise(rng, n, rate, _band(250.0, 2800.0))[0]
        syllables = _swell(rng, seconds, period_s=float(rng.uniform(0.25, 0.45)), depth=0.9)
        phrases = _swell(rng, seconds, period_s=float(rng.uniform(2.0, 4.0)), depth=0.8)
        pan = float(rng.uniform(-0.9, 0.9))
        talk = voice * syllables * phrases
        babble[0] += talk * np.sqrt((1 - pan) / 2)
        babble[1] += talk * np.sqrt((1 + pan) / 2)
    return babble


def _room(rng: np.random.Generator, n: int, rate: int) -> np.ndarray:
    return _noise(rng, n, rate, _brownish(80.0))


def _drone(rng: np.random.Generator, n: int, rate: int) -> np.ndarray:
    seconds = np.arange(n) / rate
    bed = _noise(rng, n, rate, _brownish(80.0))
    root = float(rng.choice([55.0, 61.7, 65.4, 73.4]))
    phase = rng.uniform(0, 2 * np.pi)
    drone = np.sin(2 * np.pi * root * seconds + phase) + 0.5 * np.sin(
        2 * np.pi * root * 1.5 * seconds
    )
    drone *= 0.75 + 0.25 * np.sin(2 * np.pi * seconds / 5.0 + phase)
    return bed + 0.6 * drone / _rms(drone)


_LAYERS: dict[str, Layer] = {
    "surf": _surf,
    "rain": _rain,
    "wind": _wind,
    "traffic": _traffic,
    "birds": _birds,
    "fire": _fire,
    "crowd": _crowd,
    "room": _room,
    "drone": _drone,
}


# --- building blocks -------------------------------------------------------------------

SpectralShape = Callable[[np.ndarray], np.ndarray]


def _noise(rng: np.random.Generator, n: int, rate: int, shape: SpectralShape) -> np.ndarray:
    """Noise with the given spectral gain, two channels that share most of their signal."""
    white = rng.standard_normal((2, n), dtype=np.float32)
    middle, side = _filtered(white, rate, shape)
    return np.stack([0.85 * middle + 0.5 * side, 0.85 * middle - 0.5 * side])


def _filtered(signal: np.ndarray, rate: int, shape: SpectralShape) -> np.ndarray:
    n = signal.shape[-1]
    spectrum = np.fft.rfft(signal, axis=-1)
    spectrum *= shape(np.fft.rfftfreq(n, 1.0 / rate)).astype(np.float32)
    return np.fft.irfft(spectrum, n=n, axis=-1).astype(np.float32)


def _impulses(
    rng: np.random.Generator, n: int, rate: int, per_second: float, decay_s: float
) -> np.ndarray:
    """Sparse clicks (two channels, each its own) that ring down exponentially."""
    clicks = np.zeros((2, n), np.float32)
    for channel in range(2):
        count = rng.poisson(per_second * n / rate)
        where = rng.integers(0, n, count)
        clicks[channel, where] = rng.uniform(0.2, 1.0, count) * rng.choice((-1.0, 1.0), count)
    length = max(1, int(6 * decay_s * rate))
    ring = np.exp(-np.arange(length) / (decay_s * rate)).astype(np.float32)
    spectrum = np.fft.rfft(clicks, n=n + length, axis=-1) * np.fft.rfft(ring, n=n + length)
    return np.fft.irfft(spectrum, n=n + length, axis=-1)[:, :n].astype(np.float32)


def _brownish(corner_hz: float) -> SpectralShape:
    return lambda freqs: 1.0 / np.sqrt(1.0 + (freqs / corner_hz) ** 2) * (freqs > 20)


def _band(low_hz: float, high_hz: float) -> SpectralShape:
    return lambda freqs: (
        1.0 / ((1.0 + (low_hz / np.maximum(freqs, 1.0)) ** 2) * (1.0 + (freqs / high_hz) ** 2))
    )


def _swell(
    rng: np.random.Generator, seconds: np.ndarray, period_s: float, depth: float
) -> np.ndarray:
    """A slow, irregular loudness contour between ``1 - depth`` and 1."""
    step = period_s / 2
    position = seconds / step
    heights = rng.uniform(0.0, 1.0, int(position[-1]) + 2)
    index = position.astype(np.int64)
    blend = 0.5 - 0.5 * np.cos(np.pi * (position - index))  # cosine steps: no corners
    contour = heights[index] * (1.0 - blend) + heights[index + 1] * blend
    return ((1.0 - depth) + depth * contour).astype(np.float32)


def _rms(signal: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(signal, dtype=np.float64)))) or 1.0
