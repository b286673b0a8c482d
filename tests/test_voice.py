"""The neural voice: who speaks a line, how long it lasts and where it lands; the scene's bed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kinema.engines.sound.ambience import ambience, scene_layers
from kinema.engines.sound.soundtrack import extract_dialogue, make_soundtrack
from kinema.engines.sound.voice import neural_voice, speaker_for

RATE = 48_000


def pitch_hz(speech: np.ndarray, rate: int = RATE) -> float:
    """Median pitch of the voiced 40 ms blocks, by autocorrelation (60..400 Hz)."""
    size, found = int(0.04 * rate), []
    for start in range(0, speech.size - size, size // 2):
        block = speech[start : start + size].astype(np.float64)
        if np.sqrt(np.mean(block**2)) < 0.03:
            continue
        block -= block.mean()
        correlation = np.correlate(block, block, "full")[size - 1 :]
        low, high = rate // 400, rate // 60
        lag = low + int(np.argmax(correlation[low:high]))
        if correlation[lag] > 0.4 * correlation[0]:
            found.append(rate / lag)
    return float(np.median(found))


def test_the_speaker_is_the_one_the_words_before_the_line_name():
    assert speaker_for("The woman turns and says: ", "") == "female"
    assert speaker_for("The old man leans in and whispers: ", "") == "male"
    assert speaker_for("She looks at him and says: ", "") == "male"  # the nearest word
    assert speaker_for("Then a voice says: ", "A man walks in the rain.") == "male"
    assert speaker_for("Someone says: ", "A quiet street.") is None


def test_lines_carry_their_speaker():
    lines = extract_dialogue("He says: 'Good morning.' She answers: 'Morning to you too.'")

    assert [line.speaker for line in lines] == ["male", "female"]


def test_the_neural_voice_ships_inside_its_package():
    import hibari

    voice = neural_voice()

    assert voice is not None
    model = Path(voice.model.model_path)
    assert model.is_relative_to(Path(hibari.__file__).parent) and model.is_file()


def test_a_man_speaks_lower_than_a_woman():
    woman = make_soundtrack("The woman says: 'I have been waiting for an hour.'", 4.0, seed=1)
    man = make_soundtrack("The man says: 'I have been waiting for an hour.'", 4.0, seed=1)

    assert woman.lines[0].voice == "neural-female"
    assert man.lines[0].voice == "neural-male"
    assert pitch_hz(man.speech) < 0.8 * pitch_hz(woman.speech)
    assert pitch_hz(man.speech) < 165


@pytest.mark.parametrize(
    "text",
    ["Well...", "Hello there, it is a lovely day.", "We will leave at dawn, before the others."],
)
def test_voice_duration_follows_the_line_and_sits_where_it_was_placed(text: str):
    prompt = f"The woman smiles and says: '{text}' Then the light fades over the sea."
    track = make_soundtrack(prompt, 8.0, seed=2)
    (placed,) = track.lines
    words = len(text.split())

    duration = placed.end_s - placed.start_s
    assert 0.15 * words < duration < 0.9 * words + 0.8  # a spoken pace, not a blip or a drone
    # placed where the quote sits in the prompt, and only there
    assert abs(placed.start_s - prompt.index("'") / len(prompt) * 8.0) < 0.05
    start, end = round(placed.start_s * RATE), round(placed.end_s * RATE)
    inside = np.sqrt(np.mean(track.speech[start:end] ** 2))
    outside = np.abs(np.concatenate([track.speech[:start], track.speech[end:]])).max()
    assert inside > 0.05 and outside == 0.0


def test_the_voice_is_the_same_for_the_same_seed():
    prompt = "She says: 'Same words, same sound.'"

    assert np.array_equal(
        make_soundtrack(prompt, 3.0, seed=9).speech, make_soundtrack(prompt, 3.0, seed=9).speech
    )


# --- ambience ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prompt", "layers"),
    [
        ("Rain falls on the window.", ["rain"]),
        ("Waves break on the beach.", ["surf"]),
        ("A windy ridge.", ["wind"]),
        ("Night traffic in the city.", ["traffic"]),
        ("Birds in the garden at dawn.", ["birds"]),
        ("A campfire under the stars.", ["fire"]),
        ("A crowd at the market.", ["crowd"]),
        ("A quiet room.", ["quiet"]),
        ("A storm over the city.", ["rain", "traffic"]),
        ("A portrait.", []),
    ],
)
def test_scene_words_pick_the_layers(prompt: str, layers: list[str]):
    assert scene_layers(prompt) == layers


def spectrum_share(bed: np.ndarray, low: float, high: float) -> float:
    power = np.abs(np.fft.rfft(bed.mean(axis=0))) ** 2
    freqs = np.fft.rfftfreq(bed.shape[1], 1 / RATE)
    return float(power[(freqs >= low) & (freqs < high)].sum() / power.sum())


def crest(bed: np.ndarray) -> float:
    return float(np.abs(bed).max() / np.sqrt(np.mean(bed**2)))


def bed(prompt: str) -> np.ndarray:
    return ambience(prompt, 4 * RATE, RATE, np.random.default_rng(3))


def test_each_scene_sounds_like_itself():
    rain, surf, birds = bed("rain"), bed("the sea"), bed("birds")
    fire, wind, room = bed("a fire"), bed("wind"), bed("a room")

    assert spectrum_share(rain, 2000, 20000) > 2 * spectrum_share(surf, 2000, 20000)
    assert spectrum_share(birds, 2500, 6500) > 0.5  # chirps
    assert crest(fire) > 1.5 * crest(wind)  # crackles
    assert spectrum_share(room, 0, 200) > 0.6  # a low room tone
    crowd = bed("a crowd").mean(axis=0)
    # a babble: loudness that comes and goes at the pace of syllables
    envelope = np.sqrt(np.convolve(crowd**2, np.ones(480) / 480, "same"))[::480]
    assert envelope.std() / envelope.mean() > 0.2
