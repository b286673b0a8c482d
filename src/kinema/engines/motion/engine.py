"""The ``motion`` engine: a still picture brought to life on the CPU, with no weights fetched.

It is the embedded default: every model id can be served by it on any machine.

1. **Framing** (``framing``): the faces in the picture (``faces``) decide the crop. The
   picture covers the frame, cropped around the faces with room above them, or, where no
   crop holds them all (or the client asked for ``pad``), it is fitted whole over a
   blurred, darkened fill. At ``t = 0`` the camera rests, so frame 0 is exactly that
   framed picture; the move chosen from the prompt (``camera``) then eases in and out,
   its every pose held so that each face stays whole.
2. **Layers** (``layers``, ``stage``): the subject of a photograph is cut out and the
   background filled in behind it from the background itself; the background follows the
   move at less than half its rate (parallax). A painted picture is filmed whole.
3. **A talking face** (``face_anim``, ``visemes``): the mouth takes the shape of each
   sound the voice speaks (shut on m, b, p; open on a; rounded on o, u; wide on i), the
   eyes blink, the head sways; only where a face was found.
4. **Sound** (``media.audio``): the prompt's quoted dialogue in a neural voice over a bed
   made from the scene's words.

A first-last request cross-dissolves into the last picture, fitted the same way, which
arrives at its own rest pose on the last frame. Without an input picture the engine
paints one from the prompt (``paint_first_frame``).

Frames are rendered lazily, one at a time, so memory stays flat even for 8 s of 4k. The
encoder asks for YUV 4:2:0 planes directly, which costs half as much as rendering RGB and
converting it.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, get_args

import cv2
import numpy as np
from PIL import Image

from kinema.engines.motion.camera import (
    CameraMove,
    Canvas,
    MoveKind,
    Pose,
    camera_move,
    choose_camera,
    cover_size,
    ease,
)
from kinema.engines.motion.continuation import continued_move
from kinema.engines.motion.face_anim import blink_track, head_sway, speech_openness
from kinema.engines.motion.faces import Face, find_faces
from kinema.engines.motion.framing import Framing, ResizeMode, frame_picture
from kinema.engines.motion.layers import separate
from kinema.engines.motion.painting import paint_first_frame
from kinema.engines.motion.stage import FaceTracks, LayeredShot, background_poses
from kinema.engines.motion.visemes import MouthTrack, mouth_track
from kinema.engines.sound.phones import Phone
from kinema.engines.sound.soundtrack import Soundtrack, make_soundtrack, speech_sample_rate
from kinema.engines.sound.voice import neural_voice
from kinema.errors import EngineError, JobCancelled
from kinema.media.encode import AUDIO_SAMPLE_RATE, Yuv420Frame
from kinema.types import CancelCheck, Clip, EngineRequest, ProgressCallback

__all__ = ["MotionEngine", "paint_first_frame"]

_INTERPOLATION = {"bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC}
_RESIZE_MODES = {"auto": "auto", "crop": "crop", "pad": "pad"}
_WORKING_DENSITY = 1.5  # picture pixels per output pixel kept (moves magnify to ~1.22)


class MotionEngine:
    """Camera moves over the input picture (or a painted one), plus a spoken soundtrack.

    Options (from the catalog, or per request in ``EngineRequest.options``):
    ``camera`` forces a move kind (``"static"``, ``"pan_left"``...) whatever the prompt
    says; ``interpolation`` is ``"bilinear"`` (default, fastest) or ``"bicubic"``;
    ``resize_mode`` is ``"auto"`` (default: crop around the faces, pad where they cannot
    all fit), ``"crop"`` or ``"pad"``; ``framing``, ``parallax`` and ``talking_face``
    (all on by default) switch those effects off when false.
    ``negative_prompt`` and reference images are ignored.
    """

    name = "motion"

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        self._options = dict(options or {})

    def setup(self) -> None:
        speech_sample_rate()  # load espeak-ng now, so a broken install fails at startup
        neural_voice()  # and the neural voice and the face detector, not in the first job
        find_faces(Image.new("RGB", (64, 64)))

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
        asked = request.resize_mode or options.get("resize_mode", "auto")
        resize_mode = _option({"resize_mode": asked}, "resize_mode", _RESIZE_MODES, "auto")
        effects = _Effects.from_options(options)

        # 0. Sound, started first: the voice synthesises (off the GIL) while the picture is
        # prepared; the encoder needs the whole track before the first frame, and the mouth
        # follows the voice.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="kinema-sound") as pool:
            sound = (
                pool.submit(make_soundtrack, request.prompt, request.duration_s, request.seed)
                if request.generate_audio
                else None
            )
            return self._prepare(request, options, interpolation, resize_mode, effects, sound,
                                 on_progress, is_cancelled)  # fmt: skip

    def _prepare(
        self,
        request: EngineRequest,
        options: dict[str, Any],
        interpolation: int,
        resize_mode: ResizeMode,
        effects: _Effects,
        sound: Future[Soundtrack] | None,
        on_progress: ProgressCallback,
        is_cancelled: CancelCheck,
    ) -> Clip:
        width, height, count = request.width, request.height, request.num_frames

        # 1. The picture, its faces, and the framing that keeps them whole.
        forced = options.get("camera")
        move = continued_move(request, forced) or _camera_for(request.prompt, request.seed, forced)
        first = _working_picture(_first_picture(request, width, height), width, height)
        photographed = request.image is not None or bool(request.reference_images)
        faces = find_faces(first) if photographed and effects.needs_faces else []
        framing = frame_picture(
            first, faces if effects.framing else [], width, height, resize_mode
        )
        if not effects.framing and faces:  # still animate them, where the crop shows them
            framing = replace(framing, faces=_placed_faces(faces, first, framing))
        times = [index / max(count - 1, 1) for index in range(count)]
        room = cover_size(framing.picture.size, width, height)
        poses = [move.pose(t, width, height, room) for t in times]
        poses = framing.place(poses, width, height, move.leaves_picture)

        if is_cancelled():
            raise JobCancelled("cancelled while framing the picture")

        # 2. Layers: the subject cut out, the background filled in behind it.
        # A painted picture (text-to-video) is filmed whole: its soft, hazy layers give a
        # cut nothing to hold on to, and a cut-out ridge sliding over the ridge left in
        # its background doubles every outline as the move goes on (a ghost).
        wanted = photographed and (effects.parallax or (effects.talking_face and framing.faces))
        layers = separate(framing.picture, framing.faces) if wanted else None
        background = background_poses(poses) if layers is not None and effects.parallax else poses

        if is_cancelled():
            raise JobCancelled("cancelled while separating the layers")

        # 3. The sound started at step 0.
        audio = None
        speech = np.zeros(0, np.float32)
        phones: tuple[Phone, ...] = ()
        notes: tuple[str, ...] = ()
        if sound is not None:
            soundtrack = sound.result()
            audio, speech = soundtrack.audio, soundtrack.speech
            phones, notes = soundtrack.phones, soundtrack.notes

        if is_cancelled():
            raise JobCancelled("cancelled while making the soundtrack")

        # 4. Canvases: the pictures at the scale the moves need, with margin where they must.
        canvas = Canvas.build(framing.picture, width, height, poses + background)
        tracks = None
        if layers is not None and framing.faces and effects.talking_face:
            tracks = _face_tracks(speech, phones, request, height)
        layered = (
            LayeredShot(canvas, framing.picture.size, room, layers, framing.faces, tracks)
            if layers is not None
            else None
        )
        shots = [_Shot(canvas, poses, background, layered, tracks)]
        if request.last_image is not None:
            # The last picture is framed as the first is (its faces whole, padded where
            # no crop holds them or pad was asked for) and arrives at its rest frame.
            last_picture = _working_picture(request.last_image, width, height)
            last_faces = find_faces(last_picture) if effects.framing else []
            last = frame_picture(last_picture, last_faces, width, height, resize_mode)
            last_poses = last.place(
                [pose.relative_to(poses[-1]) for pose in poses], width, height, True
            )
            last_canvas = Canvas.build(last.picture, width, height, last_poses)
            shots.append(_Shot(last_canvas, last_poses, last_poses, None, None))

        if is_cancelled():
            raise JobCancelled("cancelled while preparing the pictures")

        # 5. Frames, rendered as the encoder asks for them.
        frames = _MotionFrames(
            shots=shots,
            mix=[ease(t) for t in times] if len(shots) > 1 else [0.0] * count,
            size=(width, height),
            interpolation=interpolation,
            on_progress=on_progress,
            is_cancelled=is_cancelled,
        )
        return Clip(width, height, request.fps, count, frames, audio, notes)


@dataclass(frozen=True)
class _Effects:
    """Which of the engine's effects are on (all, unless options turn them off)."""

    framing: bool = True
    parallax: bool = True
    talking_face: bool = True

    @property
    def needs_faces(self) -> bool:
        return self.framing or self.talking_face or self.parallax

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> _Effects:
        values = {}
        for name in ("framing", "parallax", "talking_face"):
            value = options.get(name, True)
            if not isinstance(value, bool):
                raise EngineError(f"motion engine option {name}={value!r}: use true or false")
            values[name] = value
        return cls(**values)


def _face_tracks(
    speech: np.ndarray, phones: tuple[Phone, ...], request: EngineRequest, height: int
) -> FaceTracks:
    """Mouth, eyelids and sway per frame; frame 0 stays the still picture."""
    count, fps = request.num_frames, request.fps
    rng = np.random.default_rng(request.seed)
    mouth = _mouth(speech, phones, fps, count)
    closure = blink_track(count, fps, rng)
    sway = head_sway(count, fps, height, rng)
    mouth.open[0] = mouth.spread[0] = closure[0] = 0.0
    sway[0] = (0.0, 0.0, 0.0, 1.0)
    return FaceTracks(mouth.open, closure, sway, mouth.spread)


def _mouth(speech: np.ndarray, phones: tuple[Phone, ...], fps: int, count: int) -> MouthTrack:
    """The mouth's shapes from the sounds spoken; from the loudness where the voice
    reported none."""
    if phones:
        return mouth_track(phones, fps, count)
    openness = speech_openness(speech, AUDIO_SAMPLE_RATE, fps, count)
    return MouthTrack(openness, np.zeros(count, np.float32))


def _placed_faces(faces: list[Face], picture: Image.Image, framing: Framing) -> tuple[Face, ...]:
    """Faces of ``picture`` in the framing's picture (the same, or its padded composite)."""
    if framing.picture.size == picture.size and not framing.padded:
        return tuple(faces)
    fit = min(framing.picture.width / picture.width, framing.picture.height / picture.height)
    offset_x = (framing.picture.width - round(picture.width * fit)) // 2
    offset_y = (framing.picture.height - round(picture.height * fit)) // 2
    return tuple(face.scaled(fit, fit, offset_x, offset_y) for face in faces)


def _working_picture(picture: Image.Image, width: int, height: int) -> Image.Image:
    """``picture`` shrunk to what the clip can show of it: no camera move magnifies it past
    about 1.22 output pixels per picture pixel, so a 24-megapixel photograph made into a
    small clip is not cut out, filled in and feathered at its full size."""
    room_w, _ = cover_size(picture.size, width, height)
    density = picture.width / room_w
    if density <= _WORKING_DENSITY:
        return picture
    scale = _WORKING_DENSITY / density
    size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
    # OpenCV's area average: the right filter for shrinking, and far faster than Pillow's
    shrunk = cv2.resize(np.asarray(picture.convert("RGB")), size, interpolation=cv2.INTER_AREA)
    return Image.fromarray(shrunk, "RGB")


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
    background: list[Pose]  # the background layer's poses (the same without layers)
    layered: LayeredShot | None  # the subject over its background, when separated
    tracks: FaceTracks | None  # the faces' motion, when there are faces to move

    def key(self, index: int) -> object:
        """What decides frame ``index``: equal keys, equal pictures."""
        face = self.tracks.key(index) if self.tracks is not None else None
        return (self.poses[index], self.background[index], face)


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
        for (rgb,) in self._frames((self._size,)):
            yield rgb

    def iter_yuv420p(self) -> Iterator[Yuv420Frame]:
        width, height = self._size
        chroma = (width // 2, height // 2)
        for planes in self._frames((self._size, chroma, chroma)):
            y, cb, cr = planes
            yield y, cb, cr

    def _frames(self, sizes: tuple[tuple[int, int], ...]) -> Iterator[tuple[np.ndarray, ...]]:
        """Frames as RGB (one size) or as YUV 4:2:0 planes (luma, chroma, chroma sizes)."""
        count = len(self._mix)
        previous_key: object = None
        rendered: tuple[np.ndarray, ...] = ()
        for index in range(count):
            if self._is_cancelled():
                raise JobCancelled(f"cancelled at frame {index} of {count}")
            mix = self._mix[index]
            key = (mix, *(shot.key(index) for shot in self._shots))
            if key != previous_key:  # a still camera renders once
                rendered = self._render(sizes, index, mix)
                for plane in rendered:
                    plane.flags.writeable = False
                previous_key = key
            self._on_progress((index + 1) / count)
            yield rendered

    def _render(
        self, sizes: tuple[tuple[int, int], ...], index: int, mix: float
    ) -> tuple[np.ndarray, ...]:
        layers = [
            self._render_shot(shot, sizes, index)
            for shot, weight in zip(self._shots, (1.0 - mix, mix), strict=False)
            if weight > 0.0
        ]
        if len(layers) == 1:
            return layers[0]
        first, last = layers
        return tuple(
            cv2.addWeighted(a, 1.0 - mix, b, mix, 0.0) for a, b in zip(first, last, strict=True)
        )

    def _render_shot(
        self, shot: _Shot, sizes: tuple[tuple[int, int], ...], index: int
    ) -> tuple[np.ndarray, ...]:
        pose = shot.poses[index]
        if shot.layered is not None and index > 0:  # frame 0 is the picture itself
            yuv = len(sizes) == 3
            return shot.layered.render(
                yuv, sizes, self._size, pose, shot.background[index], index, self._interpolation
            )
        if len(sizes) == 3:
            return shot.canvas.render_yuv(
                (sizes[0], sizes[1]), self._size, pose, self._interpolation
            )
        rgb = shot.canvas.render(shot.canvas.rgb, sizes[0], self._size, pose, self._interpolation)
        return (rgb,)
