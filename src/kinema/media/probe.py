"""What is really inside a video file someone else made, read with PyAV.

A forwarded job comes back as an MP4 from a provider; before kinema stores and serves it
as its own, it is opened, its first frame decoded (for the thumbnail) and its size,
rate, duration and streams measured from the container, not taken from the provider.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from kinema.errors import EngineError


@dataclass(frozen=True)
class ProbedVideo:
    width: int
    height: int
    fps: float
    duration_s: float
    has_audio: bool
    first_frame: np.ndarray  # RGB, for the thumbnail


def probe_video(path: Path) -> ProbedVideo:
    """Measure the video at ``path``; ``EngineError`` if it holds no decodable video."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise EngineError("the file has no video stream")
            stream = container.streams.video[0]
            frame = next(container.decode(video=0), None)
            if frame is None:
                raise EngineError("the video stream has no frames")
            duration = float(container.duration or 0) / av.time_base
            if duration <= 0 and stream.duration is not None and stream.time_base is not None:
                duration = float(stream.duration * stream.time_base)
            return ProbedVideo(
                width=stream.codec_context.width,
                height=stream.codec_context.height,
                fps=float(stream.average_rate or 0),
                duration_s=duration,
                has_audio=bool(container.streams.audio),
                first_frame=frame.to_ndarray(format="rgb24"),
            )
    except av.FFmpegError as error:
        raise EngineError(f"the file is not a readable video ({error})") from None
