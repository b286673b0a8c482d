"""Reading a video kinema continues: its facts, its last frames, its pictures and its sound.

An extension starts from an existing MP4 (one kinema made, or one a client sent inline).
``inspect_video`` checks it and reads what an engine needs (the last frames, as RGB);
``SourceVideo`` then hands its frames over as YUV 4:2:0 planes, untouched when the file is
already 4:2:0 at the output size, so splicing it in front of a new clip costs no colour
round trip, and its sound as float PCM at the encoder's rate.
"""

from __future__ import annotations

import collections
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import ColorRange, Colorspace
from PIL import Image

from kinema.errors import InvalidRequest
from kinema.types import Audio

__all__ = [
    "MAX_DECODED_PIXELS",
    "MAX_SIDE",
    "InvalidVideo",
    "SourceVideo",
    "VideoFacts",
    "first_frame",
    "inspect_video",
    "video_duration_problem",
]

FieldPath = str | tuple[str | int, ...]
Planes = tuple[np.ndarray, np.ndarray, np.ndarray]  # I420: Y, U, V

MAX_SIDE = 4096  # longest side of a video kinema continues
# Pixels decoded from one source before it is refused (about a minute of 1080p at 60 fps):
# a file's header does not bound what its frames hold, so decoding counts as it goes.
MAX_DECODED_PIXELS = 2**33
_SAMPLE_RATE = 48_000


class InvalidVideo(InvalidRequest):
    """A source video could not be decoded or is not one kinema continues."""

    code = "invalid_video"


@dataclass(frozen=True)
class VideoFacts:
    width: int  # even: odd sides are cut to the even size below
    height: int
    fps: float
    num_frames: int
    has_audio: bool

    @property
    def duration_s(self) -> float:
        return self.num_frames / self.fps


def video_duration_problem(facts: VideoFacts, max_input_s: float) -> str | None:
    """Why a video of ``facts`` is too long or too short to extend, or None."""
    if facts.duration_s < 1.0 - 1e-6:
        return f"video is {facts.duration_s:.2f} s long; an extension needs at least 1 s"
    if facts.duration_s > max_input_s + 1e-6:
        return (
            f"video is {facts.duration_s:.2f} s long; "
            f"this model extends at most {max_input_s:g} s"
        )
    return None


def inspect_video(
    source: Path | bytes,
    *,
    field: FieldPath = "video",
    look_back: float = 0.0,
    max_pixels: int = MAX_DECODED_PIXELS,
) -> tuple[VideoFacts, list[Image.Image]]:
    """Decode ``source`` once: its facts and its closing pictures (RGB, oldest first): the
    frame ``look_back`` of its length before the last one (a share, 0..1; none for 0),
    then the last frame.

    Raises ``InvalidVideo`` (naming ``field``) for anything that is not a decodable video
    with at least one frame, every frame's sides at most ``MAX_SIDE`` (whatever the header
    says) and at most ``max_pixels`` pixels in all.
    """
    try:
        with _open(source) as container:
            if not container.streams.video:
                raise InvalidVideo.for_field(field, "has no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            width, height = stream.codec_context.width, stream.codec_context.height
            if not (2 <= width <= MAX_SIDE and 2 <= height <= MAX_SIDE):
                raise InvalidVideo.for_field(
                    field, f"is {width}x{height}; sides must be 2 to {MAX_SIDE} pixels"
                )
            rate = stream.average_rate or stream.guessed_rate
            fps = float(rate) if rate else 0.0
            if not 1.0 <= fps <= 240.0:
                raise InvalidVideo.for_field(field, "has no usable frame rate")
            expected = stream.frames or 0  # MP4 states it; when not, look back one frame
            back = max(1, round(look_back * expected)) if look_back > 0 else 0
            last: collections.deque[av.VideoFrame] = collections.deque(maxlen=back + 1)
            count = 0
            budget = _PixelBudget(field, max_pixels)
            for frame in container.decode(stream):
                budget.take(frame)
                last.append(frame)
                count += 1
            has_audio = bool(container.streams.audio)
    except av.FFmpegError as error:
        raise InvalidVideo.for_field(field, f"is not a readable video ({error})") from None
    if count == 0:
        raise InvalidVideo.for_field(field, "has no frames")
    facts = VideoFacts(width // 2 * 2, height // 2 * 2, fps, count, has_audio)
    closing = [last[0], last[-1]] if len(last) > 1 else [last[-1]]
    return facts, [Image.fromarray(_rgb(frame, facts.width, facts.height)) for frame in closing]


def first_frame(source: Path | bytes, *, field: FieldPath = "video") -> Image.Image:
    """The first picture of a video, as RGB."""
    try:
        with _open(source) as container:
            if not container.streams.video:  # a sound file, say
                raise InvalidVideo.for_field(field, "has no video stream")
            frame = next(container.decode(container.streams.video[0]), None)
            if frame is not None:
                _PixelBudget(field, MAX_SIDE * MAX_SIDE).take(frame)
    except av.FFmpegError as error:
        raise InvalidVideo.for_field(field, f"is not a readable video ({error})") from None
    if frame is None:
        raise InvalidVideo.for_field(field, "has no frames")
    return Image.fromarray(_rgb(frame, frame.width, frame.height))


class _PixelBudget:
    """Checks each decoded frame's size, and the pixels decoded so far, against limits."""

    def __init__(self, field: FieldPath, max_pixels: int) -> None:
        self.field = field
        self.left = max_pixels

    def take(self, frame: av.VideoFrame) -> None:
        width, height = frame.width, frame.height
        if not (2 <= width <= MAX_SIDE and 2 <= height <= MAX_SIDE):
            raise InvalidVideo.for_field(
                self.field,
                f"has a {width}x{height} frame; sides must be 2 to {MAX_SIDE} pixels",
            )
        self.left -= width * height
        if self.left < 0:
            raise InvalidVideo.for_field(
                self.field, "holds more pixels than this server decodes from one video"
            )


class SourceVideo:
    """A video being spliced in front of a new clip, read lazily from ``path``."""

    def __init__(self, path: Path, facts: VideoFacts) -> None:
        self.path = path
        self.facts = facts

    def frame_count_at(self, fps: int) -> int:
        """How many frames the video lasts at ``fps``."""
        return max(1, round(self.facts.duration_s * fps))

    def iter_yuv420p(self, fps: int) -> Iterator[Planes]:
        """Its pictures as BT.709 limited-range I420 planes, retimed to ``fps`` (the
        nearest earlier source frame for each output frame)."""
        width, height = self.facts.width, self.facts.height
        wanted = self.frame_count_at(fps)
        step = self.facts.fps / fps
        produced = 0
        with _open(self.path) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            planes = None
            for index, frame in enumerate(container.decode(stream)):
                planes = None
                while produced < wanted and int(produced * step + 1e-6) <= index:
                    if planes is None:
                        planes = _planes(frame, width, height)
                    yield planes
                    produced += 1
                if produced >= wanted:
                    return
            while produced < wanted and planes is not None:  # a short last stretch
                yield planes
                produced += 1

    def audio(self) -> Audio | None:
        """The sound track as stereo float PCM at 48 kHz, or None without one."""
        if not self.facts.has_audio:
            return None
        chunks: list[np.ndarray] = []
        with _open(self.path) as container:
            resampler = av.AudioResampler(format="fltp", layout="stereo", rate=_SAMPLE_RATE)
            for frame in container.decode(audio=0):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray())
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray())
        if not chunks:
            return None
        samples = np.concatenate(chunks, axis=1).astype(np.float32)
        return Audio(samples=samples, sample_rate=_SAMPLE_RATE)


def _open(source: Path | bytes) -> av.container.InputContainer:
    return av.open(io.BytesIO(source) if isinstance(source, bytes) else str(source), mode="r")


def _source_colours(frame: av.VideoFrame) -> tuple[int, int]:
    """The colour matrix and range a frame says it uses; BT.709 limited when it says none."""
    space = int(frame.colorspace)
    colour_range = int(frame.color_range)
    known = (int(Colorspace.ITU709), int(Colorspace.ITU601), int(Colorspace.SMPTE240M))
    known_space = space in known
    return (
        space if known_space else int(Colorspace.ITU709),
        colour_range if colour_range in (1, 2) else int(ColorRange.MPEG),
    )


def _rgb(frame: av.VideoFrame, width: int, height: int) -> np.ndarray:
    space, colour_range = _source_colours(frame)
    return frame.reformat(
        width=width,
        height=height,
        format="rgb24",
        src_colorspace=space,
        src_color_range=colour_range,
        dst_colorspace=Colorspace.ITU709,
    ).to_ndarray()


def _planes(frame: av.VideoFrame, width: int, height: int) -> Planes:
    if frame.format.name != "yuv420p" or frame.width != width or frame.height != height:
        space, colour_range = _source_colours(frame)
        frame = frame.reformat(
            width=width,
            height=height,
            format="yuv420p",
            src_colorspace=space,
            src_color_range=colour_range,
            dst_colorspace=Colorspace.ITU709,
            dst_color_range=ColorRange.MPEG,
        )
    stacked = frame.to_ndarray()  # I420: Y rows, then U, then V
    chroma = (height // 2) * (width // 2)
    y = np.ascontiguousarray(stacked[:height])
    rest = stacked[height:].reshape(-1)
    u = rest[:chroma].reshape(height // 2, width // 2).copy()
    v = rest[chroma : 2 * chroma].reshape(height // 2, width // 2).copy()
    for plane in (y, u, v):
        plane.flags.writeable = False
    return y, u, v
