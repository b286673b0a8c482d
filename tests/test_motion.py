"""The motion engine: crop policy, camera moves, dissolves, painting, progress and cancel."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import get_args

import av
import cv2
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageOps

from kinema.engines.base import Engine
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
from kinema.engines.motion.engine import MotionEngine, paint_first_frame
from kinema.errors import EngineError, JobCancelled
from kinema.media.encode import encode_mp4, rgb_to_yuv420p
from kinema.types import EngineRequest

WIDTH, HEIGHT, FPS = 320, 180, 24
ASSET = Path(__file__).parents[1] / "src" / "kinema" / "assets" / "sample.jpg"


def landscape(size: tuple[int, int] = (640, 480)) -> Image.Image:
    """A smooth picture with structure everywhere (4:3, so covering 16:9 crops it)."""
    width, height = size
    xs = np.linspace(0, 1, width)[np.newaxis, :]
    ys = np.linspace(0, 1, height)[:, np.newaxis]
    red = 60 + 150 * xs + 30 * np.sin(9 * ys)
    green = 40 + 160 * ys + 20 * np.cos(7 * xs)
    blue = 120 + 80 * np.sin(5 * xs + 3 * ys)
    pixels = np.stack(np.broadcast_arrays(red, green, blue), axis=-1)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def target(size: tuple[int, int] = (WIDTH, HEIGHT)) -> Image.Image:
    """White rings on black around the centre: zooming changes how much white shows."""
    picture = Image.new("RGB", size)
    draw = ImageDraw.Draw(picture)
    centre_x, centre_y = size[0] / 2, size[1] / 2
    for radius in range(4, max(size), 8):
        box = (centre_x - radius, centre_y - radius, centre_x + radius, centre_y + radius)
        draw.ellipse(box, outline=(255, 255, 255), width=3)
    return picture


def horizontal_ramp() -> Image.Image:
    ramp = np.tile(np.linspace(0, 255, WIDTH, dtype=np.float32), (HEIGHT, 1))
    return Image.fromarray(ramp.astype(np.uint8), "L").convert("RGB")


def request(prompt: str = "push in", **fields) -> EngineRequest:
    values = dict(
        prompt=prompt,
        width=WIDTH,
        height=HEIGHT,
        fps=FPS,
        num_frames=24,
        generate_audio=False,
        seed=1,
        image=landscape(),
    )
    values.update(fields)
    return EngineRequest(**values)


def render(req: EngineRequest) -> list[np.ndarray]:
    clip = MotionEngine().run(req, lambda _: None, lambda: False)
    return [frame.copy() for frame in clip.frames]


def mean_abs_diff(a: np.ndarray | Image.Image, b: np.ndarray | Image.Image) -> float:
    return float(np.abs(np.asarray(a, np.float32) - np.asarray(b, np.float32)).mean())


def white_share(frame: np.ndarray) -> float:
    return float((frame.mean(axis=2) > 128).mean())


# --- the engine contract --------------------------------------------------------------


def test_motion_engine_is_an_engine():
    engine = MotionEngine()

    assert isinstance(engine, Engine)
    assert engine.name == "motion"
    engine.setup()


def test_clip_has_the_requested_size_count_and_rate():
    clip = MotionEngine().run(request(num_frames=30), lambda _: None, lambda: False)
    frames = list(clip.frames)

    assert (clip.width, clip.height, clip.fps, clip.num_frames) == (WIDTH, HEIGHT, FPS, 30)
    assert len(frames) == 30
    assert all(f.shape == (HEIGHT, WIDTH, 3) and f.dtype == np.uint8 for f in frames)


def test_frame_zero_is_the_picture_covering_the_frame_centre_cropped():
    picture = landscape((640, 480))  # 4:3 into 16:9: top and bottom are cropped

    first = render(request(image=picture))[0]

    fitted = ImageOps.fit(picture, (WIDTH, HEIGHT), centering=(0.5, 0.5))
    assert mean_abs_diff(first, fitted) < 2.0


def test_frame_zero_of_a_portrait_picture_in_a_portrait_frame():
    picture = landscape((300, 700))

    first = render(request(image=picture, width=180, height=320))[0]

    fitted = ImageOps.fit(picture, (180, 320), centering=(0.5, 0.5))
    assert mean_abs_diff(first, fitted) < 2.0


def test_first_frame_of_the_encoded_video_matches_the_cropped_picture(tmp_path: Path):
    picture = Image.open(ASSET)
    req = request(
        "push in. She says: 'Look at that.'",
        image=picture,
        width=1280,
        height=720,
        num_frames=24,
        generate_audio=True,
    )
    clip = MotionEngine().run(req, lambda _: None, lambda: False)

    encode_mp4(clip, tmp_path / "out.mp4")

    with av.open(str(tmp_path / "out.mp4")) as container:
        assert [s.type for s in container.streams] == ["video", "audio"]
        assert container.streams.video[0].frames == 24
        first = next(container.decode(video=0)).to_ndarray(format="rgb24")
    fitted = ImageOps.fit(picture.convert("RGB"), (1280, 720), centering=(0.5, 0.5))
    assert mean_abs_diff(first, fitted) < 6.0


def test_audio_only_when_asked():
    with_audio = MotionEngine().run(request(generate_audio=True), lambda _: None, lambda: False)
    without = MotionEngine().run(request(generate_audio=False), lambda _: None, lambda: False)

    assert with_audio.audio is not None
    assert with_audio.audio.samples.shape == (2, 48_000)  # 24 frames at 24 fps: 1 s
    assert without.audio is None


def test_yuv_planes_show_the_same_picture_as_rgb_frames():
    req = request("pan left", num_frames=6)
    rgb = MotionEngine().run(req, lambda _: None, lambda: False)
    planar = MotionEngine().run(req, lambda _: None, lambda: False)

    for frame, planes in zip(rgb.frames, planar.frames.iter_yuv420p(), strict=True):
        for got, expected in zip(planes, rgb_to_yuv420p(frame), strict=True):
            assert mean_abs_diff(got, expected) < 1.5


def test_same_seed_gives_identical_frames_and_another_prompt_does_not():
    first = render(request("a slow pan", seed=4))
    again = render(request("a slow pan", seed=4))
    other = render(request("a slow tilt", seed=4))

    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(first[-1], other[-1])


# --- progress and cancellation --------------------------------------------------------


def test_progress_rises_to_one_as_frames_are_handed_over():
    progress: list[float] = []
    clip = MotionEngine().run(request(num_frames=12), progress.append, lambda: False)
    assert progress == []  # nothing is rendered before the frames are asked for

    frames = iter(clip.frames)
    next(frames)
    assert progress == [pytest.approx(1 / 12)]
    list(frames)
    assert progress == sorted(progress) and progress[-1] == 1.0 and len(progress) == 12


def test_cancel_stops_within_one_frame():
    checks = []

    def cancelled_after_three_frames() -> bool:
        checks.append(True)
        # run() checks five times while preparing (start, framing, layers, sound,
        # pictures), then once before each frame.
        return len(checks) > 8

    clip = MotionEngine().run(request(num_frames=24), lambda _: None, cancelled_after_three_frames)
    produced = []
    with pytest.raises(JobCancelled):
        for frame in clip.frames:
            produced.append(frame)

    assert len(produced) == 3


def test_cancel_during_preparation_stops_before_any_frame():
    checks = []

    def cancelled_on_second_check() -> bool:
        checks.append(True)
        return len(checks) >= 2

    with pytest.raises(JobCancelled):
        MotionEngine().run(request(num_frames=24), lambda _: None, cancelled_on_second_check)


def test_cancel_during_encoding_leaves_no_file(tmp_path: Path):
    progress: list[float] = []
    clip = MotionEngine().run(
        request(num_frames=48, generate_audio=True),
        progress.append,
        lambda: len(progress) >= 10,
    )

    with pytest.raises(JobCancelled):
        encode_mp4(clip, tmp_path / "out.mp4")

    assert list(tmp_path.iterdir()) == []
    assert len(progress) == 10


def test_cancel_before_start_raises_at_once():
    with pytest.raises(JobCancelled):
        MotionEngine().run(request(), lambda _: None, lambda: True)


def test_odd_sizes_are_refused():
    with pytest.raises(EngineError):
        MotionEngine().run(request(width=321), lambda _: None, lambda: False)


# --- camera moves ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prompt", "kind"),
    [
        ("Slow push-in on her face", "push_in"),
        ("The camera zooms in on the clock", "push_in"),
        ("The camera pulls back to reveal the city", "pull_out"),
        ("zoom out from the flower", "pull_out"),
        ("pan left across the hills", "pan_left"),
        ("the camera pans to the right", "pan_right"),
        ("tilt up to the sky", "tilt_up"),
        ("crane down to the street", "tilt_down"),
        ("dolly in toward the door", "dolly_in"),
        ("dolly out of the room", "dolly_out"),
        ("the camera orbits the statue clockwise", "orbit_right"),
        ("a slow orbit to the left", "orbit_left"),
        ("Static camera. She smiles, then zooms in on her phone.", "static"),
        ("locked-off shot of the harbour", "static"),
        ("A woman sits by the window", "drift"),
        ("A frying pan sizzles on the stove", "drift"),
    ],
)
def test_choose_camera_reads_the_prompt(prompt: str, kind: str):
    assert choose_camera(prompt, seed=0).kind == kind


def test_without_a_cue_the_camera_pushes_in_gently():
    move = choose_camera("A woman smiles.", seed=3)

    assert 1.0 < move.zoom <= 1.1
    end = move.pose(1.0, WIDTH, HEIGHT, (WIDTH, HEIGHT))
    assert end.zoom == pytest.approx(move.zoom)


def test_seed_fills_in_what_the_prompt_leaves_open():
    moves = [choose_camera("a slow pan across the room", seed) for seed in range(20)]

    assert {move.kind for move in moves} == {"pan_left", "pan_right"}
    assert choose_camera("a slow pan", 7) == choose_camera("a slow pan", 7)
    assert len({move.zoom for move in moves}) > 1


def test_every_move_kind_can_be_built():
    for kind in get_args(MoveKind):
        assert camera_move(kind, seed=2).kind == kind


def test_moves_start_at_rest_and_ease():
    for kind in get_args(MoveKind):
        move = camera_move(kind, seed=1)
        assert move.pose(0.0, WIDTH, HEIGHT, (WIDTH, HEIGHT)) == Pose()
    assert ease(0.0) == 0.0 and ease(1.0) == 1.0 and ease(0.5) == 0.5
    assert ease(0.05) < 0.05 and ease(0.95) > 0.95  # slow at both ends


@pytest.mark.parametrize("kind", [k for k in get_args(MoveKind) if "out" not in k])
def test_moves_stay_inside_the_picture(kind: str):
    move = camera_move(kind, seed=5)  # type: ignore[arg-type]
    room = (WIDTH, HEIGHT)

    for step in range(11):
        reach_x, reach_y = move.pose(step / 10, WIDTH, HEIGHT, room).half_extent(WIDTH, HEIGHT)
        assert reach_x <= WIDTH / 2 + 1e-6 and reach_y <= HEIGHT / 2 + 1e-6


def test_pull_outs_film_a_canvas_extended_beyond_the_picture():
    move = camera_move("pull_out", seed=5)
    poses = [move.pose(step / 10, WIDTH, HEIGHT, (WIDTH, HEIGHT)) for step in range(11)]

    canvas = Canvas.build(landscape((WIDTH, HEIGHT)), WIDTH, HEIGHT, poses)

    assert canvas.rgb.shape[1] > WIDTH and canvas.rgb.shape[0] > HEIGHT
    reach_x, reach_y = poses[-1].half_extent(WIDTH, HEIGHT)
    assert canvas.rgb.shape[1] / 2 >= reach_x and canvas.rgb.shape[0] / 2 >= reach_y


def ring_crossings(frame: np.ndarray) -> int:
    """Ring edges crossed by the middle of the centre row: fewer when magnified."""
    return int(np.count_nonzero(np.diff(frame[HEIGHT // 2, 60:260, 0] > 128)))


def test_push_in_magnifies_and_pull_out_shrinks():
    rings = target()

    pushed = render(request("push in", image=rings))
    pulled = render(request("pull out", image=rings))

    assert ring_crossings(pushed[0]) == ring_crossings(pulled[0])
    assert ring_crossings(pushed[-1]) < ring_crossings(pushed[0]) - 2
    assert ring_crossings(pulled[-1]) > ring_crossings(pulled[0]) + 2


@pytest.mark.parametrize(("prompt", "brighter"), [("pan right", True), ("pan left", False)])
def test_pans_travel_sideways(prompt: str, brighter: bool):
    frames = render(request(prompt, image=horizontal_ramp()))

    # The ramp brightens to the right: panning right brings brighter columns in.
    change = frames[-1].mean() - frames[0].mean()
    assert (change > 5) if brighter else (change < -5)


@pytest.mark.parametrize(("prompt", "sign"), [("tilt up", -1), ("tilt down", 1)])
def test_tilts_travel_vertically(prompt: str, sign: int):
    ramp = horizontal_ramp().transpose(Image.Transpose.ROTATE_270).resize((WIDTH, HEIGHT))
    brightness_down = np.asarray(ramp)[:, :, 0].mean(axis=1)
    assert brightness_down[-1] > brightness_down[0]  # brighter at the bottom

    frames = render(request(prompt, image=ramp))

    assert sign * (frames[-1].mean() - frames[0].mean()) > 5


def test_orbit_rolls_the_view_and_frames_change_smoothly():
    move = camera_move("orbit_left", seed=0)
    end = move.pose(1.0, WIDTH, HEIGHT, (WIDTH, HEIGHT))
    assert end.angle != 0 and end.x < 0 and end.zoom > 1

    frames = render(request("orbit left", image=landscape(), num_frames=24))

    steps = [mean_abs_diff(a, b) for a, b in itertools.pairwise(frames)]
    assert max(steps) < 4 * (sum(steps) / len(steps))  # no jumps between frames


def test_static_camera_holds_every_frame():
    frames = render(request("static camera, she reads a book"))

    assert all(np.array_equal(frames[0], frame) for frame in frames)


def test_pose_relative_to_itself_is_rest():
    pose = Pose(zoom=1.2, x=30.0, y=-10.0, angle=1.5)

    rest = pose.relative_to(pose)

    assert rest.zoom == pytest.approx(1.0) and rest.angle == pytest.approx(0.0)
    assert rest.x == pytest.approx(0.0) and rest.y == pytest.approx(0.0)


def test_camera_option_overrides_the_prompt():
    engine = MotionEngine({"camera": "static"})
    clip = engine.run(request("pan left"), lambda _: None, lambda: False)
    frames = [frame.copy() for frame in clip.frames]

    assert np.array_equal(frames[0], frames[-1])
    with pytest.raises(EngineError, match="camera"):
        MotionEngine({"camera": "barrel roll"}).run(request(), lambda _: None, lambda: False)


def test_cover_size_scales_the_picture_to_fill_the_frame():
    assert cover_size((640, 480), 320, 180) == pytest.approx((320, 240))
    assert cover_size((100, 400), 320, 180) == pytest.approx((320, 1280))


def test_camera_move_is_a_value():
    assert CameraMove("static") == CameraMove("static")


# --- first-last dissolve --------------------------------------------------------------


def test_first_last_request_dissolves_into_the_last_picture():
    first_picture = landscape()
    last_picture = ImageOps.invert(landscape((480, 360)).transpose(Image.Transpose.FLIP_LEFT_RIGHT))

    frames = render(request("push in", image=first_picture, last_image=last_picture))

    assert mean_abs_diff(frames[0], ImageOps.fit(first_picture, (WIDTH, HEIGHT))) < 2.0
    assert mean_abs_diff(frames[-1], ImageOps.fit(last_picture, (WIDTH, HEIGHT))) < 2.0
    middle = frames[len(frames) // 2]
    assert mean_abs_diff(middle, frames[0]) > 10 and mean_abs_diff(middle, frames[-1]) > 10


# --- text to video --------------------------------------------------------------------


def test_without_a_picture_the_engine_paints_the_first_frame():
    prompt = "A quiet lake at sunset, slow push-in"

    first = render(request(prompt, image=None))[0]

    painted = paint_first_frame(prompt, WIDTH, HEIGHT, seed=1)
    assert painted.size == (WIDTH, HEIGHT)
    assert mean_abs_diff(first, painted) < 2.0


def test_painting_is_deterministic_and_follows_the_prompt():
    night = np.asarray(paint_first_frame("a starry night over the hills", 192, 108, 1), float)
    day = np.asarray(paint_first_frame("a sunny day over the hills", 192, 108, 1), float)
    ocean = np.asarray(paint_first_frame("the open ocean at noon", 192, 108, 1), float)
    desert = np.asarray(paint_first_frame("a desert at noon", 192, 108, 1), float)
    forest = np.asarray(paint_first_frame("a dense green forest", 192, 108, 1), float)
    again = np.asarray(paint_first_frame("a starry night over the hills", 192, 108, 1), float)
    reseeded = np.asarray(paint_first_frame("a starry night over the hills", 192, 108, 2), float)

    assert np.array_equal(night, again) and not np.array_equal(night, reseeded)
    assert night.mean() < day.mean() - 40
    lower = slice(70, 108)  # the ground
    assert ocean[lower, :, 2].mean() > ocean[lower, :, 0].mean() + 20  # blue water
    assert desert[lower, :, 0].mean() > desert[lower, :, 2].mean() + 40  # ochre sand
    assert forest[lower, :, 1].mean() > forest[lower, :, 2].mean()  # green ground


@pytest.mark.parametrize(
    "prompt",
    [
        "A lighthouse on the mountains at dawn, the camera pans left.",
        "A forest in winter snow, the camera tilts up.",
    ],
)
def test_text_to_video_has_no_ghosts_to_the_end_of_the_clip(prompt: str):
    """The last frame is the first one moved by the camera, nothing doubled or faded: the
    best affine map of frame 0 onto it (OpenCV's ECC) leaves almost nothing over."""
    req = EngineRequest(
        prompt=prompt, width=640, height=360, fps=24, num_frames=96, generate_audio=False, seed=3
    )
    frames = list(MotionEngine().run(req, lambda _: None, lambda: False).frames)
    first, last = (
        cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY).astype(np.float32)
        for f in (frames[0], frames[-1])
    )
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 200, 1e-6)
    warp = np.eye(2, 3, dtype=np.float32)
    _, warp = cv2.findTransformECC(last, first, warp, cv2.MOTION_AFFINE, criteria, None, 5)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    aligned = cv2.warpAffine(first, warp, (640, 360), flags=flags, borderMode=cv2.BORDER_REPLICATE)
    left_over = np.abs(aligned - last)[40:-40, 60:-60]

    assert left_over.mean() < 1.0 and np.percentile(left_over, 99) < 8.0, (
        left_over.mean(),
        np.percentile(left_over, 99),
    )
