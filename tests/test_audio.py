"""Dialogue found in prompts, espeak-ng speech, resampling and the placed soundtrack."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from kinema.engines.sound.ambience import QUIET_LEVEL_DBFS
from kinema.engines.sound.soundtrack import (
    BED_LEVEL_DBFS,
    Line,
    build_soundtrack,
    extract_dialogue,
    make_soundtrack,
    resample,
    speak,
)
from kinema.types import Audio

SEED_PROMPT = "The woman puts on glasses with her hands and then sighs and says slowly: 'Well...'."
RATE = 48_000


def dbfs(samples: np.ndarray) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(np.square(samples))) + 1e-12))


# --- dialogue -------------------------------------------------------------------------


def test_seed_prompt_has_one_slow_line():
    lines = extract_dialogue(SEED_PROMPT)

    assert [line.text for line in lines] == ["Well..."]
    line = lines[0]
    assert SEED_PROMPT[line.offset] == "'"
    assert "slowly" in line.hints
    assert line.rate < 1.0


def test_apostrophes_inside_words_are_not_quotes():
    prompt = "Mona's dog doesn't bark; it's the kids' favourite and the dogs' friend."

    assert extract_dialogue(prompt) == []


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ('A man says "Hello there." and leaves.', ["Hello there."]),
        (
            "She smiles and says \u201cIt\u2019s late, isn\u2019t it?\u201d",
            ["It\u2019s late, isn\u2019t it?"],
        ),
        ("He mutters \u2018I don\u2019t know\u2019 and turns away.", ["I don\u2019t know"]),
        ("The girl says: 'Don't go, it's Mona's birthday!'", ["Don't go, it's Mona's birthday!"]),
        ("Elle dit : \u00ab Bonjour ! \u00bb", ["Bonjour !"]),
    ],
)
def test_every_kind_of_quote_delimits_a_line(prompt: str, expected: list[str]):
    assert [line.text for line in extract_dialogue(prompt)] == expected


def test_lines_come_in_order_with_their_offsets():
    prompt = "He whispers 'Come here.' and then she shouts \"No!\" at him."

    lines = extract_dialogue(prompt)

    assert [line.text for line in lines] == ["Come here.", "No!"]
    assert [prompt[line.offset] for line in lines] == ["'", '"']
    assert lines[0].offset < lines[1].offset


def test_delivery_words_set_rate_volume_and_voice():
    whisper, shout, quick = (
        extract_dialogue(prompt)[0]
        for prompt in (
            "She whispers: 'Be quiet.'",
            "He shouts: 'Run!'",
            "The clerk says quickly: 'Next please.'",
        )
    )

    assert whisper.whisper and whisper.volume < Line("x", 0).volume
    assert shout.volume == 1.0 and not shout.whisper
    assert quick.rate > 1.0
    assert Line("x", 0).rate == 1.0


def test_words_after_a_line_describe_it_when_nothing_comes_before():
    lines = extract_dialogue("'Stay close,' she whispers, and the lights go out.")

    assert lines[0].text == "Stay close,"
    assert lines[0].whisper


def test_quoted_terms_that_are_not_speech_are_skipped():
    prompt = "A 'film noir' look, with a 'Dutch angle'. She says: 'Who are you?'"

    assert [line.text for line in extract_dialogue(prompt)] == ["Who are you?"]


# --- speech and resampling ------------------------------------------------------------


def test_speak_returns_audible_mono_speech():
    audio = speak("Hello there, how are you?")

    assert audio.samples.shape[0] == 1
    assert audio.samples.dtype == np.float32
    assert 0.5 < audio.duration_s < 4.0
    assert dbfs(audio.samples) > -35
    assert np.abs(audio.samples).max() <= 1.0


def test_slower_speech_lasts_longer():
    normal = speak("The quick brown fox jumps over the lazy dog.")
    slow = speak("The quick brown fox jumps over the lazy dog.", rate=0.6)

    assert slow.duration_s > normal.duration_s * 1.3


def test_speech_from_many_threads_is_as_from_one():
    text = "One voice at a time, please."
    alone = speak(text).samples

    with ThreadPoolExecutor(max_workers=4) as pool:
        together = list(pool.map(lambda _: speak(text).samples, range(8)))

    # Interleaved calls would mix their samples into one another's buffers.
    for samples in together:
        assert abs(samples.shape[1] - alone.shape[1]) < 0.01 * alone.shape[1]
        assert abs(dbfs(samples) - dbfs(alone)) < 0.5


def test_resample_keeps_duration_and_pitch():
    rate_in = 22_050
    t = np.arange(rate_in) / rate_in
    audio = Audio(np.sin(2 * np.pi * 440 * t).astype(np.float32)[np.newaxis, :], rate_in)

    out = resample(audio, RATE)

    assert out.sample_rate == RATE
    assert out.samples.shape == (1, RATE)
    spectrum = np.abs(np.fft.rfft(out.samples[0]))
    assert abs(np.argmax(spectrum) * RATE / out.samples.shape[1] - 440) < 2
    assert abs(dbfs(out.samples[:, 4_800:-4_800]) - dbfs(audio.samples)) < 0.5


# --- soundtrack -----------------------------------------------------------------------


def test_soundtrack_is_stereo_float_of_the_exact_duration():
    audio = build_soundtrack(SEED_PROMPT, 2.0, seed=1)

    assert audio.sample_rate == RATE
    assert audio.samples.shape == (2, 2 * RATE)
    assert audio.samples.dtype == np.float32
    assert np.abs(audio.samples).max() <= 1.0


def test_ambience_sits_near_minus_30_dbfs():
    for prompt in ("A room.", "Waves on a beach.", "Wind over a field.", "Rain at night."):
        bed = build_soundtrack(prompt, 4.0, seed=3).samples

        assert abs(dbfs(bed) - BED_LEVEL_DBFS) < 2.5, prompt


def test_a_quiet_room_is_ten_db_quieter():
    bed = build_soundtrack("A quiet room.", 4.0, seed=3).samples

    assert abs(dbfs(bed) - QUIET_LEVEL_DBFS) < 2.5


def test_ambience_depends_only_on_prompt_and_seed():
    prompt = "Waves roll onto a quiet beach."
    first = build_soundtrack(prompt, 1.0, seed=5).samples
    again = build_soundtrack(prompt, 1.0, seed=5).samples
    other = build_soundtrack(prompt, 1.0, seed=6).samples

    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


def test_speech_is_placed_where_the_quote_sits_in_the_prompt():
    prompt = (
        "She says: 'Hello there, it is a lovely day.' Then she walks slowly to the window, "
        "looks at the garden for a long while and sits down in the old chair by the fire."
    )
    audio = build_soundtrack(prompt, 6.0, seed=2).samples

    speech = audio[:, : int(1.5 * RATE)]
    later = audio[:, 3 * RATE :]
    assert dbfs(speech) > dbfs(later) + 10
    assert abs(dbfs(later) - BED_LEVEL_DBFS) < 4


def test_a_line_at_the_end_of_the_prompt_still_ends_inside_the_clip():
    track = make_soundtrack(SEED_PROMPT, 4.0, seed=1)
    (placed,) = track.lines
    audio = track.audio.samples

    assert placed.end_s <= 4.0 - 0.1 + 1e-6
    start, end = audio[:, : 2 * RATE], audio[:, -int(0.05 * RATE) :]
    spoken = audio[:, int(placed.start_s * RATE) : int(placed.end_s * RATE)]
    assert dbfs(spoken) > dbfs(start) + 10
    assert dbfs(end) < dbfs(spoken) - 10


def test_a_line_longer_than_the_clip_is_fitted_into_it():
    prompt = (
        "He says: 'This is a very long sentence that could never be spoken in a single "
        "second by anyone at all, however fast they talk.'"
    )

    audio = build_soundtrack(prompt, 1.0, seed=4).samples

    assert audio.shape == (2, RATE)
    assert dbfs(audio[:, int(0.2 * RATE) : int(0.8 * RATE)]) > BED_LEVEL_DBFS + 10
