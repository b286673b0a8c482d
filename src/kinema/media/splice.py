"""An extended video: the source video, then the new clip, as one ``Clip`` (Veo's behaviour).

The source's pictures go to the encoder as they are (I420 planes, retimed to the clip's
frame rate); the new clip's follow, scaled to the source's size if its engine rendered
another. The sound runs on without a gap: the source's track, then the new clip's, joined
by a short equal-power crossfade so the seam does not click. A side without sound is
silence of its length.
"""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np
from av.video.frame import VideoFrame
from av.video.reformatter import ColorRange, Colorspace

from kinema.media.encode import AUDIO_SAMPLE_RATE, PlanarFrames, Yuv420Frame, rgb_to_yuv420p
from kinema.media.resample import resample
from kinema.media.source_video import SourceVideo
from kinema.types import Audio, Clip

__all__ = ["CROSSFADE_S", "join_audio", "splice"]

CROSSFADE_S = 0.04


def splice(source: SourceVideo, clip: Clip) -> Clip:
    """``source`` followed by ``clip``, at ``clip``'s frame rate and ``source``'s size."""
    width, height = source.facts.width, source.facts.height
    head = source.frame_count_at(clip.fps)
    audio = join_audio(source.audio(), clip.audio, head / clip.fps, clip.num_frames / clip.fps)
    frames = _SplicedFrames(source, clip, (width, height))
    return Clip(width, height, clip.fps, head + clip.num_frames, frames, audio)


def join_audio(
    first: Audio | None, second: Audio | None, first_s: float, second_s: float
) -> Audio | None:
    """``first`` (fitted to ``first_s``) then ``second`` (fitted to ``second_s``), stereo
    at the encoder's rate, crossfaded over ``CROSSFADE_S``; None when neither has sound."""
    if first is None and second is None:
        return None
    rate = AUDIO_SAMPLE_RATE
    head = _stereo(first, round(first_s * rate), rate)
    tail = _stereo(second, round(second_s * rate), rate)
    fade = min(round(CROSSFADE_S * rate), head.shape[1], tail.shape[1])
    if fade == 0:
        return Audio(np.concatenate([head, tail], axis=1), rate)
    ramp = np.linspace(0.0, np.pi / 2, fade, dtype=np.float32)
    seam = head[:, -fade:] * np.cos(ramp) + tail[:, :fade] * np.sin(ramp)
    # The overlap makes the track ``fade`` samples shorter than the video; the encoder
    # pads its end with silence (a few hundredths of a second).
    joined = np.concatenate([head[:, :-fade], seam, tail[:, fade:]], axis=1)
    return Audio(joined.astype(np.float32), rate)


def _stereo(audio: Audio | None, length: int, rate: int) -> np.ndarray:
    if audio is None:
        return np.zeros((2, length), np.float32)
    samples = resample(audio, rate).samples
    if samples.ndim == 1:
        samples = samples[np.newaxis, :]
    if samples.shape[0] == 1:
        samples = np.repeat(samples, 2, axis=0)
    samples = samples[:2, :length]
    if samples.shape[1] < length:
        samples = np.pad(samples, ((0, 0), (0, length - samples.shape[1])))
    return samples.astype(np.float32)


class _SplicedFrames:
    """The source's planes, then the clip's, as the encoder pulls them (``PlanarFrames``)."""

    def __init__(self, source: SourceVideo, clip: Clip, size: tuple[int, int]) -> None:
        self._source = source
        self._clip = clip
        self._size = size

    def __iter__(self) -> Iterator[np.ndarray]:
        width, height = self._size
        for y, u, v in self.iter_yuv420p():
            frame = VideoFrame(width, height, "yuv420p")
            for plane, data in zip(frame.planes, (y, u, v), strict=True):
                rows = np.frombuffer(memoryview(plane), dtype=np.uint8)
                rows.reshape(plane.height, plane.line_size)[:, : data.shape[1]] = data
            yield frame.reformat(
                format="rgb24", src_colorspace=Colorspace.ITU709, src_color_range=ColorRange.MPEG
            ).to_ndarray()

    def iter_yuv420p(self) -> Iterator[Yuv420Frame]:
        yield from self._source.iter_yuv420p(self._clip.fps)
        yield from self._clip_planes()

    def _clip_planes(self) -> Iterator[Yuv420Frame]:
        width, height = self._size
        clip = self._clip
        same_size = (clip.width, clip.height) == (width, height)
        if same_size and isinstance(clip.frames, PlanarFrames):
            yield from clip.frames.iter_yuv420p()
            return
        for frame in clip.frames:
            if not same_size:
                frame = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
            yield rgb_to_yuv420p(frame)
