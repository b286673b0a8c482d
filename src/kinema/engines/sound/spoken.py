"""Dialogue text as the voices read it: one spelling of each number.

The neural voice's number reader knows ASCII digits: a superscript or full-width digit
next to a currency sign (``'¥¹'``) made it raise. Unicode's compatibility forms (NFKC)
turn superscripts, subscripts, full-width and circled digits and ligatures into their
plain spelling, and the remaining decimal digits of other scripts become ASCII ones, so
both voices read ``'¥¹'`` as they read ``'¥1'``.
"""

from __future__ import annotations

import unicodedata

__all__ = ["spoken_text"]


def spoken_text(text: str) -> str:
    """``text`` in compatibility form, every decimal digit an ASCII one."""
    text = unicodedata.normalize("NFKC", text)
    return "".join(
        str(unicodedata.decimal(char)) if char.isdecimal() and not char.isascii() else char
        for char in text
    )
