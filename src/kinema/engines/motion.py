"""The ``motion`` engine: camera moves over a still picture, on the CPU, with no weights.

It is the embedded default: every model id can be served by it on any machine.

Crop policy: the input picture COVERS the output frame. It is scaled, keeping its aspect,
until it fills the frame, and the overflow is cropped evenly from both sides (a centre
crop, as ``PIL.ImageOps.fit(picture, size, centering=(0.5, 0.5))``). At ``t = 0`` the
camera rests, so frame 0 is exactly that fitted picture; the move chosen from the prompt
(see ``camera``) then eases in and out. A first-last request cross-dissolves into the last
picture, fitted the same way, which arrives at its own rest pose on the last frame.
Without an input picture the engine paints one from the prompt (``paint_first_frame``).

Frames are rendered lazily, one at a time, so memory stays flat even for 8 s of 4k. The
encoder asks for YUV 4:2:0 planes directly, which costs half as much as rendering RGB and
converting it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, get_args

import cv2
import numpy as np
from PIL import Image

from kinema.engines.camera import (
    CameraMove,
    Canvas,
    MoveKind,
    Pose,
    camera_move,
    choose_camera,
    cover_size,
    ease,
)
from kinema.engines.continuation import continued_move
from kinema.engines.painting import paint_first_frame
from kinema.errors import EngineError, JobCancelled
from kinema.media.audio import build_soundtrack, speech_sample_rate
from kinema.media.encode import Yuv420Frame
from kinema.types import CancelCheck, Clip, EngineRequest, ProgressCallback

__all__ = ["MotionEngine", "paint_first_frame"]

_INTERPOLATION = {"bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC}


class MotionEngine:
    """Camera moves over the input picture (or a painted one), plus a spoken soundtrack.

    Options (from the catalog, or per request in ``EngineRequest.options``):
    ``camera`` forces a move kind (``"static"``, ``"pan_left"``...) whatever the prompt
    says; ``interpolation`` is ``"bilinear"`` (default, fastest) or ``"bicubic"``.
    ``negative_prompt`` and reference images are ignored.
    """

    name = "motion"

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        self._options = dict(options or {})

    def setup(self) -> None:
        speech_sample_rate()  # load espeak-ng now, so a broken install fails at startup

    def run(
        self, request: EngineRequest, on_progress: ProgressCallback, is_cancelled: CancelCheck
    ) -> Clip:
        """Prepare the clip; its frames render while ``Clip.frames`` is iterated.

        ``on_progress`` gets ``(i + 1) / num_frames`` as frame ``i`` is handed over, and
        ``is_cancelled`` is checked before each frame (``JobCancelled`` follows at once).
        """
        if is_cancelled():
            raise JobCancelled("cancelled before rendering started")
        width, height, count = request.width, request.height, request.num_frames
        if width % 2 or height % 2 or width <= 0 or height <= 0 or count <= 0:
            raise EngineError(f"cannot render {count} frames of {width}x{height}")
        options = {**self._options, **request.options}
        interpolation = _option(options, "interpolation", _INTERPOLATION, "bilinear")

        # 1. The move, and the pose of the camera on each frame.
        forced = options.get("camera")
        move = continued_move(request, forced) or _camera_for(request.prompt, request.seed, forced)
        first = _first_picture(request, width, height)
        times = [index / max(count - 1, 1) for index in range(count)]
        room = cover_size(first.size, width, height)
        poses = [move.pose(t, width, height, room) for t in times]

        # 2. Canvases: the pictures at the scale the move needs, with margin where it must.
        shots = [_Shot(Canvas.build(first, width, height, poses), poses)]
        if request.last_image is not None:
            last_poses = [pose.relative_to(poses[-1]) for pose in poses]
            shots.append(
                _Shot(Canvas.build(request.last_image, width, height, last_poses), last_poses)
            )

        if is_cancelled():
            raise JobCancelled("cancelled while preparing the pictures")

        # 3. Sound, made now: the encoder needs the whole track before the first frame.
        audio = None
        if request.generate_audio:
            audio = build_soundtrack(request.prompt, request.duration_s, request.seed)

        if is_cancelled():
            raise JobCancelled("cancelled while making the soundtrack")

        # 4. Frames, rendered as the encoder asks for them.
        frames = _MotionFrames(
            shots=shots,
            mix=[ease(t) for t in times] if len(shots) > 1 else [0.0] * count,
            size=(width, height),
            interpolation=interpolation,
            on_progress=on_progress,
            is_cancelled=is_cancelled,
        )
        return Clip(width, height, request.fps, count, frames, audio)


def _first_picture(request: EngineRequest, width: int, height: int) -> Image.Image:
    """The picture the camera starts on: the input image, else the first reference
    image (reference-to-video), else one painted from the prompt (text-to-video)."""
    if request.image is not None:
        return request.image
    if request.reference_images:
        return request.reference_images[0]
    return paint_first_frame(request.prompt, width, height, request.seed)


def _option(options: dict[str, Any], key: str, choices: dict[str, Any], default: str) -> Any:
    value = str(options.get(key, default)).lower()
    if value not in choices:
        raise EngineError(f"motion engine option {key}={value!r}: use one of {sorted(choices)}")
    return choices[value]


def _camera_for(prompt: str, seed: int, forced: object) -> CameraMove:
    if forced is None:
        return choose_camera(prompt, seed)
    kinds = get_args(MoveKind)
    if forced not in kinds:
        raise EngineError(f"motion engine option camera={forced!r}: use one of {list(kinds)}")
    return camera_move(forced, seed)  # type: ignore[arg-type]


# --- frames ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Shot:
    """One picture of the clip and the camera pose on each frame."""

    canvas: Canvas
    poses: list[Pose]


class _MotionFrames:
    """The frames of one clip, rendered on demand as RGB or as YUV 4:2:0 planes.

    Before each frame the job's cancel flag is checked; as it is handed over, progress is
    reported. The arrays are read-only: a still camera hands over the same one again.
    """

    def __init__(
        self,
        *,
        shots: list[_Shot],
        mix: list[float],
        size: tuple[int, int],
        interpolation: int,
        on_progress: ProgressCallback,
        is_cancelled: CancelCheck,
    ) -> None:
        self._shots = shots
        self._mix = mix  # weight of the last picture on each frame (0 without one)
        self._size = size
        self._interpolation = interpolation
        self._on_progress = on_progress
        self._is_cancelled = is_cancelled

    def __len__(self) -> int:
        return len(self._mix)

    def __iter__(self) -> Iterator[np.ndarray]:
        for (rgb,) in self._frames(lambda canvas: (canvas.rgb,), (self._size,)):
            yield rgb

    def iter_yuv420p(self) -> Iterator[Yuv420Frame]:
        width, height = self._size
        chroma = (width // 2, height // 2)
        for planes in self._frames(lambda canvas: canvas.planes, (self._size, chroma, chroma)):
            y, cb, cr = planes
            yield y, cb, cr

    def _frames(
        self,
        planes_of: Callable[[Canvas], tuple[np.ndarray, ...]],
        sizes: tuple[tuple[int, int], ...],
    ) -> Iterator[tuple[np.ndarray, ...]]:
        count = len(self._mix)
        previous_key: object = None
        rendered: tuple[np.ndarray, ...] = ()
        for index in range(count):
            if self._is_cancelled():
                raise JobCancelled(f"cancelled at frame {index} of {count}")
            mix = self._mix[index]
            key = (mix, *(shot.poses[index] for shot in self._shots))
            if key != previous_key:  # a still camera renders once
                rendered = self._render(planes_of, sizes, index, mix)
                for plane in rendered:
                    plane.flags.writeable = False
                previous_key = key
            self._on_progress((index + 1) / count)
            yield rendered

    def _render(
        self,
        planes_of: Callable[[Canvas], tuple[np.ndarray, ...]],
        sizes: tuple[tuple[int, int], ...],
        index: int,
        mix: float,
    ) -> tuple[np.ndarray, ...]:
        layers = [
            tuple(
                shot.canvas.render(plane, size, self._size, shot.poses[index], self._interpolation)
                for plane, size in zip(planes_of(shot.canvas), sizes, strict=True)
            )
            for shot, weight in zip(self._shots, (1.0 - mix, mix), strict=False)
            if weight > 0.0
        ]
        if len(layers) == 1:
            return layers[0]
        first, last = layers
        return tuple(
            cv2.addWeighted(a, 1.0 - mix, b, mix, 0.0) for a, b in zip(first, last, strict=True)
        )
