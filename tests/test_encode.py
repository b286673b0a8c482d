"""MP4 encoding: streams, exact durations, colours, atomic writes and cancellation."""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from kinema.errors import EngineError, JobCancelled
from kinema.media.encode import (
    AUDIO_SAMPLE_RATE,
    EncodedVideo,
    encode_mp4,
    rgb_to_yuv420p,
    write_thumbnail,
)
from kinema.types import Audio, Clip

WIDTH, HEIGHT, FPS = 320, 180, 24


def gradient_frames(count: int, width: int = WIDTH, height: int = HEIGHT) -> Iterator[np.ndarray]:
    """Smooth, moving frames (H.264 keeps them close to the source)."""
    xs = np.linspace(0, 255, width, dtype=np.float32)[np.newaxis, :]
    ys = np.linspace(0, 255, height, dtype=np.float32)[:, np.newaxis]
    for index in range(count):
        red = np.broadcast_to(xs, (height, width))
        green = np.broadcast_to(ys, (height, width))
        blue = np.full((height, width), (index * 5) % 256, np.float32)
        yield np.stack([red, green, blue], axis=-1).astype(np.uint8)


def tone(seconds: float, rate: int = AUDIO_SAMPLE_RATE, channels: int = 2) -> Audio:
    t = np.arange(round(seconds * rate)) / rate
    wave = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    return Audio(np.tile(wave, (channels, 1)), rate)


def clip(count: int = 48, audio: Audio | None = None, frames=None) -> Clip:
    return Clip(WIDTH, HEIGHT, FPS, count, frames or gradient_frames(count), audio)


def stream_seconds(stream: av.stream.Stream) -> float:
    assert stream.duration is not None and stream.time_base is not None
    return float(stream.duration * stream.time_base)


def test_video_with_audio_has_h264_and_aac_of_exactly_the_clip_duration(tmp_path: Path):
    path = tmp_path / "out.mp4"

    encoded = encode_mp4(clip(48, tone(2.0)), path)

    assert encoded == EncodedVideo(WIDTH, HEIGHT, FPS, 48, 2.0, True, path.stat().st_size)
    assert path.stat().st_mode & 0o777 == 0o644
    with av.open(str(path)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert len(container.streams) == 2
        assert video.codec_context.name == "h264" and audio.codec_context.name == "aac"
        assert (video.width, video.height) == (WIDTH, HEIGHT)
        assert video.codec_context.pix_fmt == "yuv420p"
        assert audio.sample_rate == AUDIO_SAMPLE_RATE
        assert abs(container.duration / 1e6 - 2.0) < 1 / FPS
        assert abs(stream_seconds(video) - 2.0) < 1 / FPS
        assert abs(stream_seconds(audio) - 2.0) < 1 / FPS
        assert sum(1 for _ in container.decode(video=0)) == 48


def test_video_without_audio_has_a_single_stream(tmp_path: Path):
    path = tmp_path / "silent.mp4"

    encoded = encode_mp4(clip(24), path)

    assert not encoded.has_audio
    with av.open(str(path)) as container:
        assert [stream.type for stream in container.streams] == ["video"]
        assert abs(container.duration / 1e6 - 1.0) < 1 / FPS


@pytest.mark.parametrize(
    ("audio", "label"),
    [
        (tone(3.5), "longer than the video"),
        (tone(0.4), "shorter than the video"),
        (tone(2.0, rate=22_050, channels=1), "mono at another rate"),
    ],
)
def test_audio_track_is_cut_or_padded_to_the_video_duration(
    tmp_path: Path, audio: Audio, label: str
):
    path = tmp_path / "out.mp4"

    encode_mp4(clip(48, audio), path)

    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        assert abs(stream_seconds(stream) - 2.0) < 1 / FPS, label
        assert stream.sample_rate == AUDIO_SAMPLE_RATE


def test_padded_audio_is_silent_after_the_original_ends(tmp_path: Path):
    path = tmp_path / "out.mp4"

    encode_mp4(clip(48, tone(0.5)), path)

    with av.open(str(path)) as container:
        pcm = np.concatenate([f.to_ndarray() for f in container.decode(audio=0)], axis=1)
    sound = np.sqrt(np.mean(pcm[:, 4_800:19_200] ** 2))  # 0.1-0.4 s
    tail = np.sqrt(np.mean(pcm[:, 48_000:90_000] ** 2))  # 1.0-1.9 s
    assert sound > 0.1 and tail < 0.01


def test_colours_survive_the_encode_as_tagged_bt709(tmp_path: Path):
    path = tmp_path / "colours.mp4"
    solid = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    solid[:] = (200, 60, 30)

    encode_mp4(Clip(WIDTH, HEIGHT, FPS, 4, [solid] * 4), path)

    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
        assert frame.colorspace == av.video.reformatter.Colorspace.ITU709
        assert frame.color_range == av.video.reformatter.ColorRange.MPEG
        decoded = frame.to_ndarray(format="rgb24").astype(float)
    assert np.abs(decoded.mean(axis=(0, 1)) - (200, 60, 30)).max() < 3


def test_first_decoded_frame_is_close_to_the_first_rgb_frame(tmp_path: Path):
    path = tmp_path / "out.mp4"
    first = next(gradient_frames(1)).astype(float)

    encode_mp4(clip(24), path)

    with av.open(str(path)) as container:
        decoded = next(container.decode(video=0)).to_ndarray(format="rgb24").astype(float)
    assert np.abs(decoded - first).mean() < 3


class PlanarSource:
    """A frame source offering YUV planes, as the motion engine does."""

    def __init__(self, frames: list[np.ndarray]) -> None:
        self.frames = frames
        self.planar_calls = 0

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter(self.frames)

    def iter_yuv420p(self):
        self.planar_calls += 1
        return (rgb_to_yuv420p(frame) for frame in self.frames)


def test_planar_sources_are_encoded_from_their_planes(tmp_path: Path):
    frames = list(gradient_frames(12))
    source = PlanarSource(frames)

    encode_mp4(Clip(WIDTH, HEIGHT, FPS, 12, source), tmp_path / "planar.mp4")
    encode_mp4(Clip(WIDTH, HEIGHT, FPS, 12, frames), tmp_path / "rgb.mp4")

    assert source.planar_calls == 1
    pictures = []
    for name in ("planar.mp4", "rgb.mp4"):
        with av.open(str(tmp_path / name)) as container:
            pictures.append(next(container.decode(video=0)).to_ndarray(format="rgb24"))
    assert np.abs(pictures[0].astype(float) - pictures[1]).mean() < 2


def test_rgb_to_yuv420p_uses_bt709_limited_range():
    colours = np.array([[[255, 255, 255], [0, 0, 0]], [[255, 0, 0], [0, 0, 255]]], np.uint8)
    picture = np.repeat(np.repeat(colours, 2, axis=0), 2, axis=1)  # 2x2 blocks

    y, cb, cr = rgb_to_yuv420p(picture)

    assert y.shape == (4, 4) and cb.shape == cr.shape == (2, 2)
    assert (y[0, 0], cb[0, 0], cr[0, 0]) == (235, 128, 128)  # white
    assert (y[0, 2], cb[0, 1], cr[0, 1]) == (16, 128, 128)  # black
    assert (y[2, 0], cb[1, 0], cr[1, 0]) == (63, 102, 240)  # red
    assert (y[2, 2], cb[1, 1], cr[1, 1]) == (32, 240, 118)  # blue


def test_cancelling_inside_the_frames_removes_the_partial_file(tmp_path: Path):
    path = tmp_path / "out.mp4"

    def cancelled_after_five() -> Iterator[np.ndarray]:
        for index, frame in enumerate(gradient_frames(48)):
            if index == 5:
                raise JobCancelled("stop")
            yield frame

    with pytest.raises(JobCancelled):
        encode_mp4(clip(48, tone(2.0), frames=cancelled_after_five()), path)

    assert list(tmp_path.iterdir()) == []


def test_a_failed_encode_keeps_the_previous_file(tmp_path: Path):
    path = tmp_path / "out.mp4"
    path.write_bytes(b"previous")

    with pytest.raises(EngineError, match="10 of 48"):
        encode_mp4(clip(48, frames=gradient_frames(10)), path)

    assert path.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]


def test_frames_of_the_wrong_shape_are_an_engine_error(tmp_path: Path):
    wrong = gradient_frames(4, width=WIDTH + 2)

    with pytest.raises(EngineError, match="shape"):
        encode_mp4(clip(4, frames=wrong), tmp_path / "out.mp4")

    assert list(tmp_path.iterdir()) == []


def test_odd_sizes_are_refused(tmp_path: Path):
    with pytest.raises(EngineError, match="even"):
        encode_mp4(Clip(321, 180, FPS, 1, []), tmp_path / "out.mp4")


def test_extra_frames_are_ignored(tmp_path: Path):
    path = tmp_path / "out.mp4"

    encode_mp4(clip(12, frames=gradient_frames(30)), path)

    with av.open(str(path)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 12


def test_index_is_at_the_start_of_the_file(tmp_path: Path):
    path = tmp_path / "out.mp4"

    encode_mp4(clip(12), path)

    data = path.read_bytes()
    assert 0 <= data.find(b"moov") < data.find(b"mdat")


def test_video_time_base_counts_frames(tmp_path: Path):
    path = tmp_path / "out.mp4"

    encode_mp4(clip(12), path)

    with av.open(str(path)) as container:
        stamps = [frame.time for frame in container.decode(video=0)]
        assert container.streams.video[0].average_rate == Fraction(FPS)
    assert stamps == pytest.approx([index / FPS for index in range(12)], abs=1e-3)


def test_encode_writes_the_first_frame_as_thumbnail(tmp_path: Path):
    thumbnail = tmp_path / "thumb.jpg"
    frames = list(gradient_frames(3, width=1280, height=720))

    encode_mp4(Clip(1280, 720, FPS, 3, frames), tmp_path / "out.mp4", thumbnail_path=thumbnail)

    with Image.open(thumbnail) as picture:
        assert picture.format == "JPEG"
        assert picture.size == (640, 360)
        small = np.asarray(Image.fromarray(frames[0]).resize((640, 360))).astype(float)
        assert np.abs(np.asarray(picture).astype(float) - small).mean() < 4


def test_write_thumbnail_limits_the_longer_side(tmp_path: Path):
    portrait = np.zeros((900, 300, 3), np.uint8)

    write_thumbnail(portrait, tmp_path / "t.jpg", max_side=300)

    with Image.open(tmp_path / "t.jpg") as picture:
        assert picture.size == (100, 300)


def test_frames_in_the_file_are_counted_up_to_all_of_them_after_the_last_is_handed_over(
    tmp_path: Path,
):
    counts: list[int] = []
    seen_at_last_frame: list[int] = []
    count = 72

    def frames() -> Iterator[np.ndarray]:
        for index, frame in enumerate(gradient_frames(count)):
            if index == count - 1:
                seen_at_last_frame.append(len(counts))
            yield frame

    encode_mp4(clip(count, frames=frames()), tmp_path / "out.mp4", on_written=counts.append)

    assert counts == sorted(set(counts)) and counts[-1] == count
    # x264 still holds frames when the last one is handed over: the rest of the file is
    # written after it, and the count is still told until it says all of them.
    (calls_before_last_frame,) = seen_at_last_frame
    assert counts[calls_before_last_frame - 1] < count - 1, counts
    assert counts[calls_before_last_frame:], counts
