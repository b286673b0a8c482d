"""Faces that speak: the mouth takes the shape of each sound the voice speaks.

Measured from outside the engine on real MP4s: the face is found with scikit-image's LBP
cascade (the engine uses MTCNN), and the lip gap of each frame is read from the pixels of
its mouth region (how many rows of each central column are as dark as the inside of a
mouth, less the same on the still frame 0), not from anything the engine computed. What
was said when comes from the voice's report of its phones, which is first checked
against the sound itself. A mouth driven by loudness alone, built here by swapping the
engine's mouth track for the speech envelope, fails the same checks.
"""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from PIL import Image

import kinema.engines.motion.engine as motion_engine
from kinema.engines.motion.engine import MotionEngine
from kinema.engines.motion.face_anim import speech_openness
from kinema.engines.motion.visemes import MouthTrack
from kinema.engines.sound.phones import Phone
from kinema.engines.sound.soundtrack import make_soundtrack
from kinema.media.encode import encode_mp4
from kinema.types import EngineRequest

skimage_data = pytest.importorskip("skimage.data")
Cascade = pytest.importorskip("skimage.feature").Cascade

FPS = 24
SECONDS = 4.0
RATE = 48_000
LINE = "Mama, pop by the park. Bob and Pam are at the farm."
SPEECH = f"The camera holds still as the woman looks at us and says: '{LINE}'"
BILABIALS = {"m", "b", "p"}
OPEN_VOWELS = set("aɑæʌɒ")


def expected_opening(symbol: str) -> float:
    """How open a mouth is on a sound, by its class (the test's own table)."""
    if not symbol or symbol in BILABIALS:
        return 0.0
    if symbol[0] in OPEN_VOWELS:
        return 1.0
    if any(char in "eɛəɜiɪoɔuʊ" for char in symbol):
        return 0.5
    return 0.25


def sound_at(phones: tuple[Phone, ...], seconds: float) -> str:
    return next((p.symbol for p in phones if p.start_s <= seconds < p.end_s), "")


def middles(phones: tuple[Phone, ...], wanted) -> list[int]:
    """The frames nearest the middle of each phone that ``wanted(symbol)`` picks."""
    return [round((p.start_s + p.end_s) / 2 * FPS) for p in phones if p.symbol and wanted(p.symbol)]


def render(tmp_path: Path, prompt: str, picture: Image.Image) -> list[np.ndarray]:
    request = EngineRequest(
        prompt=prompt,
        width=640,
        height=360,
        fps=FPS,
        num_frames=round(FPS * SECONDS),
        generate_audio=True,
        seed=11,
        image=picture,
        options={"camera": "static"},
    )
    path = tmp_path / "clip.mp4"
    encode_mp4(MotionEngine().run(request, lambda _: None, lambda: False), path)
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def mouth_of(frame: np.ndarray) -> tuple[slice, slice]:
    """The mouth's box: the lower third of the face the LBP cascade finds, its middle."""
    cascade = Cascade(skimage_data.lbp_frontal_face_cascade_filename())
    hits = cascade.detect_multi_scale(
        img=frame, scale_factor=1.2, step_ratio=1, min_size=(60, 60), max_size=(360, 360)
    )
    assert hits, "no face in frame 0"
    hit = max(hits, key=lambda found: found["width"])
    x, y, w, h = hit["c"], hit["r"], hit["width"], hit["height"]
    return (slice(y + int(0.6 * h), y + int(1.0 * h)), slice(x + int(0.3 * w), x + int(0.7 * w)))


def lip_gaps(frames: list[np.ndarray]) -> np.ndarray:
    """Per frame, the mean height (pixels) of mouth-dark pixels in the mouth's central
    columns, less frame 0's."""
    mouth = mouth_of(frames[0])

    def gap(frame: np.ndarray) -> float:
        grey = cv2.cvtColor(np.ascontiguousarray(frame[mouth]), cv2.COLOR_RGB2GRAY)
        return float((grey < 70).sum(axis=0).mean())

    gaps = np.array([gap(frame) for frame in frames])
    return gaps - gaps[0]


def teeth_shown(frames: list[np.ndarray]) -> np.ndarray:
    """Per frame, how many pixels of the mouth's box are as bright as teeth."""
    mouth = mouth_of(frames[0])
    return np.array(
        [
            float((cv2.cvtColor(np.ascontiguousarray(f[mouth]), cv2.COLOR_RGB2GRAY) > 210).sum())
            for f in frames
        ]
    )


def lips_follow_the_sounds(gaps: np.ndarray, phones: tuple[Phone, ...], line) -> list[str]:
    """What is wrong with ``gaps`` as the mouth of ``phones`` (empty: nothing)."""
    problems = []
    frames = range(int(np.ceil(line.start_s * FPS)), int(line.end_s * FPS) + 1)
    expected = [expected_opening(sound_at(phones, index / FPS)) for index in frames]
    correlation = float(np.corrcoef(gaps[list(frames)], expected)[0, 1])
    if correlation < 0.6:
        problems.append(f"lip gap against the sounds: correlation {correlation:.2f} < 0.6")
    widest = gaps.max()
    closed = gaps[middles(phones, BILABIALS.__contains__)]
    if closed.max() > 0.15 * widest:
        problems.append(f"lips not closed on m, b, p: {closed.round(1)} of {widest:.1f}")
    opened = gaps[middles(phones, lambda s: s[0] in OPEN_VOWELS)]
    if np.median(opened) < 0.4 * widest:
        problems.append(f"mouth not open on open vowels: {opened.round(1)} of {widest:.1f}")
    return problems


@pytest.fixture(scope="module")
def soundtrack():
    return make_soundtrack(SPEECH, SECONDS, seed=11)


def test_the_voice_reports_the_sounds_it_speaks_when_it_speaks_them(soundtrack):
    (line,) = soundtrack.lines
    phones = soundtrack.phones
    symbols = [p.symbol for p in phones if p.symbol]

    assert line.voice == "neural-female"
    assert symbols.count("m") >= 2 and symbols.count("p") >= 2 and symbols.count("b") >= 2
    assert all(line.start_s - 0.05 <= p.start_s < p.end_s <= line.end_s + 1e-6 for p in phones)

    # the sound agrees: quiet while the lips close for a stop, loud on an open vowel
    def loudness(wanted) -> float:
        levels = [
            np.sqrt(np.mean(soundtrack.speech[round(p.start_s * RATE) : round(p.end_s * RATE)]**2))
            for p in phones
            if p.symbol and wanted(p.symbol) and p.end_s - p.start_s >= 0.02
        ]
        return float(np.mean(levels))

    assert loudness(lambda s: s in ("p", "b")) < 0.6 * loudness(lambda s: s[0] in OPEN_VOWELS)


def test_the_lips_close_on_m_b_p_open_on_a_and_follow_the_sounds(tmp_path: Path, soundtrack):
    frames = render(tmp_path, SPEECH, Image.fromarray(skimage_data.astronaut()))
    gaps = lip_gaps(frames)
    (line,) = soundtrack.lines

    assert lips_follow_the_sounds(gaps, soundtrack.phones, line) == []
    # she smiles with her teeth showing: on m, b, p the lips close over them
    teeth = teeth_shown(frames)
    shut = teeth[middles(soundtrack.phones, BILABIALS.__contains__)]
    assert teeth[0] > 100 and shut.max() < 0.4 * teeth[0], (teeth[0], shut)
    # still outside the line
    before = gaps[: int(line.start_s * FPS) - 2]
    after = gaps[int(line.end_s * FPS) + 4 :]
    assert np.abs(np.concatenate([before, after])).max() < 0.1 * gaps.max()


def test_a_mouth_that_follows_loudness_alone_fails_the_same_checks(
    tmp_path: Path, soundtrack, monkeypatch
):
    def loudness_only(speech, phones, fps, count):
        return MouthTrack(speech_openness(speech, RATE, fps, count), np.zeros(count, np.float32))

    monkeypatch.setattr(motion_engine, "_mouth", loudness_only)
    frames = render(tmp_path, SPEECH, Image.fromarray(skimage_data.astronaut()))
    gaps = lip_gaps(frames)
    (line,) = soundtrack.lines

    assert gaps.max() > 2.0  # it does move...
    assert lips_follow_the_sounds(gaps, soundtrack.phones, line) != []  # ...but not with the sounds
    teeth = teeth_shown(frames)
    assert teeth[middles(soundtrack.phones, BILABIALS.__contains__)].max() > 0.5 * teeth[0]


# --- Chinese ----------------------------------------------------------------------------

CHINESE = "镜头缓缓推近，她微笑着说：“你好，很高兴见到你。”"


def clip_for(prompt: str, picture: Image.Image | None = None, seconds: float = 4.0):
    request = EngineRequest(
        prompt=prompt,
        width=320,
        height=180,
        fps=FPS,
        num_frames=round(FPS * seconds),
        generate_audio=True,
        seed=5,
        image=picture,
    )
    return MotionEngine().run(request, lambda _: None, lambda: False)


def rms_per_half_second(samples: np.ndarray, rate: int) -> np.ndarray:
    half = rate // 2
    starts = range(0, samples.size - half + 1, half)
    return np.array([np.sqrt(np.mean(samples[i : i + half] ** 2)) for i in starts])


@pytest.mark.parametrize(
    ("prompt", "kind"),
    [
        (CHINESE, "push_in"),
        ("镜头慢慢拉远，海边日落", "pull_out"),
        ("镜头向左平移，城市街道", "pan_left"),
        ("镜头向右平移", "pan_right"),
        ("固定镜头，她看着我们", "static"),
        ("镜头环绕人物", "orbit_left|orbit_right"),
    ],
)
def test_chinese_camera_words_are_understood(prompt: str, kind: str):
    from kinema.engines.motion.camera import choose_camera

    assert choose_camera(prompt, seed=3).kind in kind.split("|")


def test_a_chinese_line_is_spoken_by_a_mandarin_voice_with_its_sounds():
    track = make_soundtrack(CHINESE, 8.0, seed=5)
    (line,) = track.lines
    mono = track.audio.samples.mean(axis=0)
    levels = rms_per_half_second(mono, track.audio.sample_rate)
    start, end = int(line.start_s * 2) + 1, int(line.end_s * 2)  # whole half seconds inside

    assert line.line.text == "你好，很高兴见到你。"
    assert line.voice == "espeak-cmn-female"
    assert 1.0 < line.end_s - line.start_s < 4.0
    bed = np.median(np.concatenate([levels[: int(line.start_s * 2)], levels[end + 1 :]]))
    assert levels[start:end].max() > 2.5 * bed and levels[start:end].max() > 0.08
    # Mandarin sounds, timed inside the line: n-i (你), a glide of ɑu (好)...
    symbols = [p.symbol for p in line.phones if p.symbol]
    assert symbols[:2] == ["n", "i"] and "ɑu" in symbols
    assert all(line.start_s <= p.start_s < p.end_s <= line.end_s + 1e-6 for p in line.phones)


@pytest.mark.parametrize(
    ("prompt", "text"),
    [
        ("她低声说「晚安」", "晚安"),
        ("他说：我们走吧。然后离开。", "我们走吧。"),
        ("『明天见』，她说。", "明天见"),
    ],
)
def test_chinese_quotes_and_a_line_after_a_full_width_colon_are_dialogue(prompt: str, text: str):
    from kinema.engines.sound.soundtrack import extract_dialogue

    assert [line.text for line in extract_dialogue(prompt)] == [text]


def test_the_mouth_speaks_chinese_too(tmp_path: Path):
    # A line with bilabials (妈妈 ma-ma, 不怕 bu pa, 朋友们 peng-you-men): the lips meet on
    # each m. (The line, 你好，很高兴见到你, has none, and its one pause is 10 ms
    # long: whether the lips part less than 15 % there turned on a sample of espeak-ng's
    # timing, which varies by a few samples from call to call.)
    prompt = "固定镜头，她微笑着说：“妈妈，不怕，朋友们都在。”"
    frames = render(tmp_path, prompt, Image.fromarray(skimage_data.astronaut()))
    gaps = lip_gaps(frames)
    (line,) = make_soundtrack(prompt, SECONDS, seed=11).lines
    inside = gaps[int(line.start_s * FPS) + 1 : int(line.end_s * FPS)]
    closed = middles(line.phones, lambda symbol: symbol == "m")

    assert line.voice.startswith("espeak-cmn")
    assert inside.max() > 1.5  # it opens ...
    assert len(closed) >= 3 and (gaps[closed] < 0.15 * inside.max()).all()  # ... and meets on m


def test_a_line_no_voice_can_speak_is_noted_on_the_clip_not_dropped_silently():
    clip = clip_for("The monk turns and says: 'ሰላም ነው።' Then he says: 'Peace be with you.'")

    assert len(clip.notes) == 1 and "ሰላም ነው።" in clip.notes[0]
    assert clip_for("She says: 'Hello there, welcome.'").notes == ()


def test_the_chinese_prompt_makes_a_clip_whose_voice_rises_above_the_bed(tmp_path: Path):
    path = tmp_path / "chinese.mp4"
    encode_mp4(clip_for(CHINESE, seconds=8.0), path)
    with av.open(str(path)) as container:
        audio = np.concatenate([f.to_ndarray() for f in container.decode(audio=0)], axis=1)
    levels = rms_per_half_second(audio.mean(axis=0), RATE)

    # the bed alone before the line (placed where its quote sits: about 3.7 s in) ...
    assert levels[:6].max() < 0.05
    # ... and the voice well above it while it speaks
    assert levels.max() > 0.08 and levels.max() > 3 * np.median(levels[:6])
