"""Sample-rate conversion of a soundtrack, shared by the encoder, the splicer and the voice."""

from __future__ import annotations

import numpy as np

from kinema.types import Audio


def resample(audio: Audio, sample_rate: int) -> Audio:
    """Change the sample rate by band-limited (FFT) interpolation, keeping the duration.

    The track is padded with silence while it is transformed so its ends do not wrap
    into each other.
    """
    if audio.sample_rate == sample_rate:
        return audio
    samples = np.asarray(audio.samples, dtype=np.float32)
    length = samples.shape[-1]
    target = round(length * sample_rate / audio.sample_rate)
    if length == 0 or target == 0:
        return Audio(np.zeros((*samples.shape[:-1], target), np.float32), sample_rate)
    pad = min(length, audio.sample_rate // 10)
    padded = np.pad(samples, [(0, 0)] * (samples.ndim - 1) + [(pad, pad)])
    padded_target = round(padded.shape[-1] * sample_rate / audio.sample_rate)
    spectrum = np.fft.rfft(padded, axis=-1)
    bins = padded_target // 2 + 1
    kept = np.zeros((*spectrum.shape[:-1], bins), dtype=spectrum.dtype)
    shared = min(bins, spectrum.shape[-1])
    kept[..., :shared] = spectrum[..., :shared]
    stretched = np.fft.irfft(kept, n=padded_target, axis=-1) * (padded_target / padded.shape[-1])
    start = round(pad * sample_rate / audio.sample_rate)
    out = stretched[..., start : start + target]
    if out.shape[-1] < target:
        out = np.pad(out, [(0, 0)] * (out.ndim - 1) + [(0, target - out.shape[-1])])
    return Audio(samples=out.astype(np.float32), sample_rate=sample_rate)
