"""MP4 encoding: a ``Clip`` becomes an H.264 + AAC file, and a frame becomes a thumbnail.

The file holds exactly ``clip.num_frames`` frames at ``clip.fps``, so its duration is the
duration the client asked for, and the audio track is trimmed or padded to that same
length. Pictures are BT.709, limited range, tagged as such so players show the colours the
engine meant.

Speed comes from overlapping the two halves of the work: the calling thread pulls frames
from the clip (where the engine renders them and calls its progress and cancel callbacks)
and converts them to YUV, while a second thread feeds x264 and the muxer through a small
bounded queue. Engines that can render YUV planes directly (see ``PlanarFrames``) skip the
RGB to YUV conversion altogether. x264 holds a dozen frames or more in its lookahead and frame
threads, so the file lags the frames handed over; a caller that shows progress is told how
many frames are in the file (``on_written``), on the calling thread, while frames are
handed over and while the encoder finishes after the last one.

The file is written next to its destination under a temporary name and renamed only once
it is complete, so a reader never sees a partial video; on any error, cancellation
included, the partial file is removed and the error propagates.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import os
import queue
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Protocol, runtime_checkable

import av
import cv2
import numpy as np
from av.video.reformatter import ColorPrimaries, ColorRange, Colorspace, ColorTrc
from PIL import Image

from kinema.errors import EngineError
from kinema.media.resample import resample
from kinema.types import Audio, Clip

__all__ = [
    "AUDIO_SAMPLE_RATE",
    "EncodedVideo",
    "PlanarFrames",
    "Yuv420Frame",
    "encode_mp4",
    "rgb_to_yuv420p",
    "write_thumbnail",
]

AUDIO_SAMPLE_RATE = 48_000
_AAC_FRAME = 1024  # samples per AAC frame
_AUDIO_BITRATE = {1: 96_000, 2: 160_000}
_QUEUE_DEPTH = 6  # frames in flight between the renderer and x264: enough to absorb jitter
_POLL_S = 0.1
_END = object()  # tells the encoding thread that no more frames will come

# BT.709 luma weights; chroma scales follow from them.
_KR, _KB = 0.2126, 0.0722

Yuv420Frame = tuple[np.ndarray, np.ndarray, np.ndarray]
"""Y (h, w), Cb (h/2, w/2) and Cr (h/2, w/2) uint8 planes, BT.709 limited range."""


@runtime_checkable
class PlanarFrames(Protocol):
    """A frame source that can also yield YUV 4:2:0 planes, skipping RGB entirely.

    Iterating it still yields RGB arrays as ``Clip.frames`` promises; the encoder uses
    ``iter_yuv420p`` instead when it is available, which must produce the same pictures.
    """

    def __iter__(self) -> Iterator[np.ndarray]: ...

    def iter_yuv420p(self) -> Iterator[Yuv420Frame]: ...


@dataclass(frozen=True)
class EncodedVideo:
    """What ``encode_mp4`` wrote."""

    width: int
    height: int
    fps: int
    num_frames: int
    duration_s: float
    has_audio: bool
    size_bytes: int


def rgb_to_yuv420p(rgb: np.ndarray) -> Yuv420Frame:
    """Convert an (h, w, 3) uint8 RGB picture with even sides to BT.709 limited-range I420.

    Chroma is the mean of each 2x2 block, centred between the four luma samples. One
    OpenCV matrix transform makes Y, Cb and Cr per pixel (rounded), and an area resize
    averages the chroma blocks, so the result is within one level of the exact float
    conversion, at a tenth of its cost.
    """
    height, width, _ = rgb.shape
    if height % 2 or width % 2:
        raise ValueError(f"YUV 4:2:0 needs even sides, got {width}x{height}")
    matrix = _bt709_limited()
    converted = cv2.transform(np.ascontiguousarray(rgb, dtype=np.uint8), matrix)
    y, cb, cr = cv2.split(converted)
    half = (width // 2, height // 2)
    cb = cv2.resize(cb, half, interpolation=cv2.INTER_AREA)
    cr = cv2.resize(cr, half, interpolation=cv2.INTER_AREA)
    return y, cb, cr


@functools.cache
def _bt709_limited() -> np.ndarray:
    """Rows: Y, Cb, Cr from 8-bit R, G, B, with the offsets in the last column."""
    kg = 1.0 - _KR - _KB
    luma = np.array([_KR, kg, _KB])
    blue = (np.array([0.0, 0.0, 1.0]) - luma) / (2.0 * (1.0 - _KB))
    red = (np.array([1.0, 0.0, 0.0]) - luma) / (2.0 * (1.0 - _KR))
    matrix = np.array(
        [
            [*(219.0 * luma / 255.0), 16.0],
            [*(224.0 * blue / 255.0), 128.0],
            [*(224.0 * red / 255.0), 128.0],
        ],
        dtype=np.float64,
    )
    matrix.flags.writeable = False
    return matrix


def encode_mp4(
    clip: Clip,
    path: Path,
    *,
    preset: str = "veryfast",
    crf: int = 20,
    thumbnail_path: Path | None = None,
    on_written: Callable[[int], None] | None = None,
) -> EncodedVideo:
    """Encode ``clip`` to an MP4 at ``path`` (H.264 yuv420p, plus AAC 48 kHz when it has audio).

    Frames are pulled from ``clip.frames`` on the calling thread, so an engine's progress
    and cancel callbacks run there; an exception raised while iterating (``JobCancelled``
    for instance) aborts the encode, removes the partial file and propagates. Frames beyond
    ``clip.num_frames`` are ignored; fewer is an ``EngineError``. When ``thumbnail_path`` is
    given, the first frame is also saved there as a JPEG (after the video succeeded).
    ``on_written`` gets the number of frames muxed into the file each time it has grown,
    on the calling thread; its last call, before the file is closed, says all of them.
    """
    if clip.width % 2 or clip.height % 2 or clip.width <= 0 or clip.height <= 0:
        raise EngineError(f"H.264 4:2:0 needs even, positive sides, got {clip.width}x{clip.height}")
    if clip.num_frames <= 0 or clip.fps <= 0:
        raise EngineError("a clip needs at least one frame and a positive frame rate")
    path = Path(path)
    temp = _temporary_beside(path)
    try:
        first_frame = _write_mp4(clip, temp, preset=preset, crf=crf, on_written=on_written)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    if thumbnail_path is not None:
        write_thumbnail(first_frame, thumbnail_path)
    return EncodedVideo(
        width=clip.width,
        height=clip.height,
        fps=clip.fps,
        num_frames=clip.num_frames,
        duration_s=clip.num_frames / clip.fps,
        has_audio=clip.audio is not None,
        size_bytes=path.stat().st_size,
    )


def write_thumbnail(frame: np.ndarray, path: Path, max_side: int = 640) -> None:
    """Save an RGB frame as a JPEG whose longer side is at most ``max_side`` pixels."""
    path = Path(path)
    picture = Image.fromarray(np.ascontiguousarray(frame, dtype=np.uint8), "RGB")
    picture.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    temp = _temporary_beside(path)
    try:
        picture.save(temp, format="JPEG", quality=85, optimize=True)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def _temporary_beside(path: Path) -> Path:
    """A new, hidden file next to ``path``, so the final rename stays on one file system."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(handle)
    os.chmod(name, 0o644)  # mkstemp's 0600 would follow the file through the rename
    return Path(name)


def _write_mp4(
    clip: Clip,
    path: Path,
    *,
    preset: str,
    crf: int,
    on_written: Callable[[int], None] | None,
) -> np.ndarray:
    """Write the whole file; return the first frame as RGB for the thumbnail."""
    container = av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"})
    try:
        video = _add_video_stream(container, clip, preset=preset, crf=crf)
        audio = (
            None
            if clip.audio is None
            else _AudioTrack(container, clip.audio, clip.num_frames / clip.fps)
        )
        first_frame = _pump_frames(clip, container, video, audio, _Written(on_written))
    except BaseException:
        # The file is being thrown away: a failure to finish it must not hide the cause.
        with contextlib.suppress(Exception):
            container.close()
        raise
    container.close()
    return first_frame


def _add_video_stream(
    container: av.container.OutputContainer, clip: Clip, *, preset: str, crf: int
) -> av.VideoStream:
    stream = container.add_stream("libx264", rate=clip.fps)
    stream.width = clip.width
    stream.height = clip.height
    stream.pix_fmt = "yuv420p"
    stream.time_base = Fraction(1, clip.fps)
    stream.options = {"preset": preset, "crf": str(crf)}
    context = stream.codec_context
    context.thread_count = 0  # let x264 pick frame and lookahead threads for the machine
    context.thread_type = "AUTO"
    context.colorspace = Colorspace.ITU709
    context.color_range = ColorRange.MPEG
    context.color_primaries = ColorPrimaries.BT709
    context.color_trc = ColorTrc.BT709
    return stream


class _AudioTrack:
    """The AAC stream, encoded as the muxer reaches it: the track is interleaved with the
    video on the encoder's thread, alongside the rendering, instead of holding up the
    first frame (AAC costs about 30 ms of CPU per second of stereo)."""

    def __init__(
        self, container: av.container.OutputContainer, audio: Audio, duration_s: float
    ) -> None:
        track = resample(audio, AUDIO_SAMPLE_RATE).samples
        if track.ndim == 1:
            track = track[np.newaxis, :]
        channels = track.shape[0]
        if channels not in _AUDIO_BITRATE:
            raise EngineError(f"audio must be mono or stereo, got {channels} channels")
        self._track = _fit_length(track, round(duration_s * AUDIO_SAMPLE_RATE))
        self._layout = "mono" if channels == 1 else "stereo"
        self._stream = container.add_stream("aac", rate=AUDIO_SAMPLE_RATE, layout=self._layout)
        self._stream.bit_rate = _AUDIO_BITRATE[channels]
        self._container = container
        self._fed: int | None = 0  # samples handed to the encoder so far (None: flushed)
        self._ready: collections.deque[av.Packet] = collections.deque()

    def mux_until(self, seconds: float) -> None:
        """Mux every audio packet that starts at or before ``seconds`` (all: ``inf``)."""
        while True:
            while self._ready and _packet_time(self._ready[0]) <= seconds:
                self._container.mux(self._ready.popleft())
            if self._ready or self._fed is None:
                return
            self._feed()

    def _feed(self) -> None:
        """Encode the next AAC frame's worth of samples (or flush the encoder at the end)."""
        assert self._fed is not None
        start = self._fed
        if start >= self._track.shape[1]:
            self._ready.extend(self._stream.encode(None))
            self._fed = None
            return
        chunk = np.ascontiguousarray(self._track[:, start : start + _AAC_FRAME])
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=self._layout)
        frame.sample_rate = AUDIO_SAMPLE_RATE
        frame.pts = start
        frame.time_base = Fraction(1, AUDIO_SAMPLE_RATE)
        self._ready.extend(self._stream.encode(frame))
        self._fed = start + _AAC_FRAME


def _fit_length(track: np.ndarray, num_samples: int) -> np.ndarray:
    """Trim (with a short fade so the cut does not click) or pad with silence."""
    track = np.clip(track.astype(np.float32, copy=False), -1.0, 1.0)
    have = track.shape[1]
    if have < num_samples:
        return np.pad(track, ((0, 0), (0, num_samples - have)))
    track = track[:, :num_samples].copy()
    if have > num_samples:
        fade = min(num_samples, AUDIO_SAMPLE_RATE // 100)
        track[:, num_samples - fade :] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    return track


def _pump_frames(
    clip: Clip,
    container: av.container.OutputContainer,
    video: av.VideoStream,
    audio: _AudioTrack | None,
    written: _Written,
) -> np.ndarray:
    """Render and convert frames here while another thread encodes and muxes them."""
    frames: queue.Queue[object] = queue.Queue(maxsize=_QUEUE_DEPTH)
    stop = threading.Event()
    time_base = Fraction(1, clip.fps)
    first_frame: np.ndarray | None = None
    produced = 0
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="kinema-x264") as pool:
        encoding = pool.submit(_encode_video, frames, stop, container, video, audio, written)
        try:
            for index, picture in zip(range(clip.num_frames), _frame_source(clip), strict=False):
                frame = _to_video_frame(picture, clip.width, clip.height)
                if first_frame is None:
                    first_frame = _as_rgb(frame, picture)
                frame.pts = index
                frame.time_base = time_base
                _put(frames, frame, encoding)
                written.tell()
                produced += 1
            if produced != clip.num_frames:
                raise EngineError(f"engine produced {produced} of {clip.num_frames} frames")
            _put(frames, _END, encoding)
            _await_encoder(encoding, written)
        except BaseException:
            stop.set()
            raise
    assert first_frame is not None  # num_frames > 0 and all were produced
    return first_frame


class _Written:
    """How many video frames are in the file: counted up by the encoding thread, passed on
    to the caller's callback on the calling thread (one writer, and an int read is atomic)."""

    def __init__(self, callback: Callable[[int], None] | None) -> None:
        self.frames = 0
        self._told = 0
        self._callback = callback

    def tell(self) -> None:
        """Call the callback with the count, if it grew since the last call."""
        frames = self.frames
        if self._callback is not None and frames > self._told:
            self._told = frames
            self._callback(frames)


def _await_encoder(encoding: Future[None], written: _Written) -> None:
    """Wait for the encoder to drain x264 and mux the rest, telling the count as it grows:
    the frames x264 still held when the last one was handed over take a while on a small
    machine, and a progress bar should move meanwhile."""
    while not wait([encoding], timeout=_POLL_S).done:
        written.tell()
    encoding.result()
    written.tell()


def _frame_source(clip: Clip) -> Iterable[np.ndarray | Yuv420Frame]:
    if isinstance(clip.frames, PlanarFrames):
        return clip.frames.iter_yuv420p()
    return clip.frames


def _put(frames: queue.Queue[object], item: object, encoding: Future[None]) -> None:
    """Block until there is room, but surface an encoder failure instead of waiting forever."""
    while True:
        try:
            frames.put(item, timeout=_POLL_S)
            return
        except queue.Full:
            if encoding.done():
                encoding.result()
                raise EngineError("the encoder stopped early") from None


def _encode_video(
    frames: queue.Queue[object],
    stop: threading.Event,
    container: av.container.OutputContainer,
    video: av.VideoStream,
    audio: _AudioTrack | None,
    written: _Written,
) -> None:
    def mux_audio_until(seconds: float) -> None:
        if audio is not None:
            audio.mux_until(seconds)

    while not stop.is_set():
        try:
            item = frames.get(timeout=_POLL_S)
        except queue.Empty:
            continue
        if item is _END:
            break
        assert isinstance(item, av.VideoFrame)
        for packet in video.encode(item):
            container.mux(packet)
            written.frames += 1
            mux_audio_until(_packet_time(packet))
    if stop.is_set():
        return
    # Drained one packet at a time (x264 finishes its frames one after another), so the
    # count moves through the flush instead of jumping at its end.
    for packet in video.codec_context.encode_lazy(None):
        packet.stream = video
        container.mux(packet)
        written.frames += 1
    mux_audio_until(float("inf"))


def _packet_time(packet: av.Packet) -> float:
    stamp = packet.dts if packet.dts is not None else packet.pts
    if stamp is None or packet.time_base is None:
        return 0.0
    return float(stamp * packet.time_base)


def _to_video_frame(picture: np.ndarray | Yuv420Frame, width: int, height: int) -> av.VideoFrame:
    if isinstance(picture, tuple):
        return _frame_from_planes(picture, width, height)
    if picture.shape != (height, width, 3) or picture.dtype != np.uint8:
        raise EngineError(
            f"expected uint8 frames of shape {(height, width, 3)}, "
            f"got {picture.dtype} {picture.shape}"
        )
    rgb = av.VideoFrame.from_ndarray(np.ascontiguousarray(picture), format="rgb24")
    return rgb.reformat(
        format="yuv420p",
        dst_colorspace=Colorspace.ITU709,
        dst_color_range=ColorRange.MPEG,
        interpolation="BILINEAR",
    )


def _frame_from_planes(planes: Yuv420Frame, width: int, height: int) -> av.VideoFrame:
    frame = av.VideoFrame(width, height, "yuv420p")
    expected = ((height, width), (height // 2, width // 2), (height // 2, width // 2))
    for plane, data, shape in zip(frame.planes, planes, expected, strict=True):
        if data.shape != shape or data.dtype != np.uint8:
            raise EngineError(f"expected a uint8 plane of shape {shape}, got {data.shape}")
        rows = np.frombuffer(memoryview(plane), dtype=np.uint8)
        rows = rows.reshape(plane.height, plane.line_size)
        rows[:, : shape[1]] = data
    frame.colorspace = Colorspace.ITU709
    frame.color_range = ColorRange.MPEG
    return frame


def _as_rgb(frame: av.VideoFrame, picture: np.ndarray | Yuv420Frame) -> np.ndarray:
    if not isinstance(picture, tuple):
        return picture.copy()
    rgb = frame.reformat(
        format="rgb24", src_colorspace=Colorspace.ITU709, src_color_range=ColorRange.MPEG
    )
    return rgb.to_ndarray()
