"""Which language a line is in, by its script, and so which voice can speak it.

The neural voice speaks English only; espeak-ng (whose data the ``espeakng-loader`` wheel
ships) has a voice for each language below. A line is English when it is written in the
Latin alphabet; otherwise the script that most of its letters are written in decides. A
script with no voice here gives None: the line cannot be spoken, and the job says so.
"""

from __future__ import annotations

import unicodedata
from collections import Counter

__all__ = ["line_language"]

# the first word of each character's Unicode name -> espeak-ng's voice for that script
_SCRIPTS = {
    "LATIN": "en",
    "CJK": "cmn",  # Han characters: Mandarin
    "HIRAGANA": "ja",
    "KATAKANA": "ja",
    "HANGUL": "ko",
    "CYRILLIC": "ru",
    "GREEK": "el",
    "ARABIC": "ar",
    "HEBREW": "he",
    "DEVANAGARI": "hi",
    "THAI": "th",
    "GEORGIAN": "ka",
    "ARMENIAN": "hy",
    "BENGALI": "bn",
    "TAMIL": "ta",
}


def line_language(text: str) -> str | None:
    """espeak-ng's name of the language ``text`` is written in ("en", "cmn"...), or None
    when it is written in a script no voice here speaks. Japanese wins over Chinese when
    any kana appear (Japanese writes with Han characters too)."""
    scripts: Counter[str] = Counter()
    for char in text:
        if char.isalpha():
            name = unicodedata.name(char, "UNKNOWN").split(" ")[0]
            scripts[name] += 1
    if not scripts:
        return "en"
    if scripts["HIRAGANA"] or scripts["KATAKANA"]:
        return "ja"
    script, _ = scripts.most_common(1)[0]
    return _SCRIPTS.get(script)
