"""Dialogue with numbers the voices' readers did not expect: every line is spoken."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kinema.engines.sound.soundtrack import make_soundtrack
from kinema.engines.sound.spoken import spoken_text

# Digits in other spellings and the signs a number reader looks at, beside plain words.
NUMBERISH = list(
    "0123456789¹²³⁰⁴⁵⁹₁₂₉½¼¾⅓①⑴٣۴߄०১௫１２９$€£¥¢₹₩%‰.,:+-/ abcxyz"  # noqa: RUF001
)


@pytest.mark.parametrize("said", ["It is ¥¹.", "Pay ¥¹ now.", "¥¹ today, €¹² and £⁵ left."])
def test_a_line_with_a_currency_sign_and_an_odd_digit_is_spoken(said: str):
    track = make_soundtrack(f"The woman says: '{said}'", 3.0, seed=1)

    assert [spoken.voice for spoken in track.lines] == ["neural-female"]
    assert float(np.sqrt(np.mean(track.speech**2))) > 0.01


def test_odd_digits_are_read_as_their_plain_spelling():
    assert spoken_text("¥¹ and ①, ½, ٣٤ or １２") == "¥1 and 1, 1⁄2, 34 or 12"  # noqa: RUF001


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.text(st.sampled_from(NUMBERISH), min_size=1, max_size=16) | st.text(max_size=16))
def test_any_dialogue_text_is_spoken_without_an_error(said: str):
    said = said.replace("'", " ")  # one quoted line, whatever it holds
    track = make_soundtrack(f"She says: 'Now {said} ok.'", 2.0, seed=3)

    assert len(track.lines) <= 1  # odd characters may end the quote early
    assert np.isfinite(track.audio.samples).all()
