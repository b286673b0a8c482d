"""Reading a provider's answer without holding more than a few MiB of it in memory.

A JSON answer is read into memory up to ``JSON_LIMIT``. An answer that may carry a video
inline (a Vertex AI operation's ``bytesBase64Encoded``) goes to a file as it arrives once
past ``SPOOL_AFTER`` (up to the caller's limit), the base64 value of that
key is decoded from the file into a file of its own, and what is left, with the value
replaced by a marker no provider can forge, is parsed as JSON. ``SpooledVideo`` stands for
the decoded video where the value was.
"""

from __future__ import annotations

import base64
import binascii
import json
import mmap
import secrets
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["JSON_LIMIT", "AnswerTooLarge", "SpooledVideo", "parse", "read_answer"]

JSON_LIMIT = 4 * 2**20  # a provider's JSON answer, inline videos aside
SPOOL_AFTER = 2**20  # an answer that may carry a video goes to a file past this
_DECODE_CHUNK = 2**20  # base64 characters decoded at once (a multiple of 4)


class AnswerTooLarge(Exception):
    """The answer is larger than kinema reads from a provider."""


class InlineTrouble(Exception):
    """An inline video could not be taken out of the answer."""


@dataclass(frozen=True)
class SpooledVideo:
    """A video the provider sent inline, decoded to ``path`` (the caller removes it)."""

    path: Path


@dataclass(frozen=True)
class Answer:
    text: bytes  # the JSON, with an inline video's value replaced by ``marker``
    marker: str | None = None
    video: Path | None = None


def read_answer(
    chunks: Iterable[bytes],
    *,
    inline_key: str | None,
    inline_limit: int,
    spool_dir: Path,
) -> Answer:
    """The answer ``chunks`` make, within ``JSON_LIMIT``; or, given an ``inline_key``,
    within ``inline_limit`` with that key's base64 value decoded to a file."""
    iterator = iter(chunks)
    buffer = bytearray()
    in_memory = JSON_LIMIT if inline_key is None else SPOOL_AFTER
    for chunk in iterator:
        buffer += chunk
        if len(buffer) > in_memory:
            if inline_key is None:
                raise AnswerTooLarge(f"the answer is larger than {JSON_LIMIT // 2**20} MiB")
            return _spooled(buffer, iterator, inline_key, inline_limit, spool_dir)
    return Answer(bytes(buffer))


def parse(answer: Answer) -> Any:
    """The answer's JSON, with ``SpooledVideo`` where its inline video was."""
    parsed = json.loads(answer.text or b"{}")
    if answer.marker is None or answer.video is None:
        return parsed
    found = False
    stack = [parsed] if isinstance(parsed, dict | list) else []
    while stack:  # iterative: the answer's depth is the provider's choice
        node = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in list(items):
            if value == answer.marker:
                node[key], found = SpooledVideo(answer.video), True
            elif isinstance(value, dict | list):
                stack.append(value)
    if not found:  # the key was not where a value goes: nothing refers to the file
        answer.video.unlink(missing_ok=True)
    return parsed


def _spooled(
    head: bytearray, rest: Iterable[bytes], key: str, limit: int, spool_dir: Path
) -> Answer:
    with tempfile.TemporaryFile(dir=spool_dir) as raw:
        size = len(head)
        raw.write(head)
        head.clear()  # from here on the answer is only on disk
        for chunk in rest:
            size += len(chunk)
            if size > limit:
                raise AnswerTooLarge(f"the answer is larger than {limit // 2**20} MiB")
            raw.write(chunk)
        raw.flush()
        with mmap.mmap(raw.fileno(), 0, access=mmap.ACCESS_READ) as view:
            start, end = _value_span(view, key)
            if start + (len(view) - end) > JSON_LIMIT:  # the rest must be a small answer
                raise AnswerTooLarge(f"the answer is larger than {JSON_LIMIT // 2**20} MiB")
            video = spool_dir / f"inline-{secrets.token_hex(8)}.mp4"
            try:
                _decode(view, start, end, video)
                marker = f"kinema-inline-{secrets.token_hex(16)}"
                text = view[:start] + marker.encode() + view[end:]
            except BaseException:
                video.unlink(missing_ok=True)
                raise
    return Answer(text, marker, video)


def _value_span(view: mmap.mmap, key: str) -> tuple[int, int]:
    """Where the string value of ``"key":`` starts and ends (inside its quotes)."""
    found = view.find(b'"' + key.encode() + b'"')
    if found < 0:
        raise AnswerTooLarge(
            f"the answer is larger than {JSON_LIMIT // 2**20} MiB and carries no inline video"
        )
    position = found + len(key) + 2
    while view[position : position + 1] in (b" ", b"\t", b"\r", b"\n", b":"):
        position += 1
    if view[position : position + 1] != b'"':
        raise InlineTrouble(f"the answer's {key} is not a string")
    start = position + 1
    end = view.find(b'"', start)
    if end < 0:
        raise InlineTrouble(f"the answer's {key} never ends")
    return start, end


def _decode(view: mmap.mmap, start: int, end: int, target: Path) -> None:
    with target.open("wb") as out:
        for offset in range(start, end, _DECODE_CHUNK):
            piece = view[offset : min(end, offset + _DECODE_CHUNK)]
            try:
                out.write(base64.b64decode(piece, validate=True))
            except (binascii.Error, ValueError):
                raise InlineTrouble("the inline video is not valid base64") from None
