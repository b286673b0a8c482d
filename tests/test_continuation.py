"""The motion engine continuing a camera move: what it reads from the source's last frames.

The source is a real MP4 and its closing pictures are the ones the executor picks
(``closing_pictures``), so a change of how far back it looks is tested here too."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kinema.engines.motion.continuation import continued_move, estimate_move
from kinema.engines.motion.engine import MotionEngine
from kinema.jobs.execute import closing_pictures
from kinema.media.encode import encode_mp4
from kinema.types import Clip, EngineRequest
from tests.support import pattern_image


def source_clip(prompt: str, seed: int = 11, **extra: object) -> Clip:
    request = EngineRequest(
        prompt=prompt,
        width=320,
        height=180,
        fps=12,
        num_frames=24,
        generate_audio=False,
        seed=seed,
        image=pattern_image(640, 360, seed=3),
        **extra,  # type: ignore[arg-type]
    )
    return MotionEngine().run(request, lambda fraction: None, lambda: False)


def closing(prompt: str) -> tuple[Image.Image, ...]:
    """The pictures the executor hands an extension of the video ``prompt`` makes."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "source.mp4"
        encode_mp4(source_clip(prompt), path)
        return tuple(closing_pictures(path)[1])


def extension(previous: tuple[Image.Image, ...], prompt: str = "") -> EngineRequest:
    return EngineRequest(
        prompt=prompt,
        width=320,
        height=180,
        fps=12,
        num_frames=12,
        generate_audio=False,
        seed=2,
        image=previous[-1] if previous else pattern_image(320, 180),
        previous_frames=previous,
    )


@pytest.mark.parametrize(
    ("prompt", "kind"),
    [
        ("pan right across the bay", "pan_right"),
        ("pan left", "pan_left"),
        ("tilt up to the sky", "tilt_up"),
        ("tilt down", "tilt_down"),
        ("slow push in", "push_in"),
        ("pull out to reveal", "pull_out"),
        ("static camera", "static"),
    ],
)
def test_an_extension_without_a_named_move_keeps_the_sources_move(prompt: str, kind: str):
    move = continued_move(extension(closing(prompt)), forced=None)
    assert move is not None
    assert move.kind == kind


def test_a_move_the_new_prompt_names_wins():
    move = continued_move(extension(closing("pan right"), "tilt down"), forced=None)
    assert move is not None and move.kind == "tilt_down"


def test_a_request_that_continues_nothing_or_a_forced_camera_is_left_alone():
    assert continued_move(extension(()), forced=None) is None
    assert continued_move(extension(closing("pan right")), forced="static") is None


def test_a_flat_picture_gives_no_estimate():
    grey = Image.new("RGB", (320, 180), (90, 90, 90))
    assert estimate_move(grey, grey) is None


def test_the_extension_opens_on_the_frame_it_continues():
    previous = closing("pan right")
    clip = MotionEngine().run(extension(previous), lambda fraction: None, lambda: False)
    first = next(iter(clip.frames))
    assert np.abs(first.astype(int) - np.array(previous[-1]).astype(int)).mean() < 1.0
