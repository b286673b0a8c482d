"""JSON bodies that carry stored files base64-encoded, written as a stream.

A Vertex AI poll of a finished job answers the video itself (``bytesBase64Encoded``).
Rendering puts an ``InlineFile`` marker where the bytes go; ``body_chunks`` writes the
JSON around the markers and streams each file in its place, a bounded chunk at a time, so
no body holds a whole video in memory. ``stream_body`` does the storage reads (and the
encoding) in a worker thread, never on the event loop. ``prepared_body`` makes a body up to
``WHOLE_BYTES`` in one worker-thread hop, to be sent whole with its length; only a longer
body is streamed, its first part already made.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pybase64
from anyio import to_thread

from kinema.storage import Storage
from kinema.views import InlineFile

CHUNK_BYTES = 3 * 2**18  # 768 KiB read at a time: a multiple of 3 encodes without padding
# Bodies up to this many bytes are made in one thread hop and sent whole: a clip of a few
# seconds (its base64 under 4 MiB) costs one hop instead of one per chunk and marker.
WHOLE_BYTES = 4 * 2**20


def has_inline(body: Any) -> bool:
    """Whether ``body`` (a rendered dict) holds an ``InlineFile`` anywhere."""
    if isinstance(body, InlineFile):
        return True
    if isinstance(body, dict):
        return any(has_inline(value) for value in body.values())
    if isinstance(body, list | tuple):
        return any(has_inline(value) for value in body)
    return False


def _dumps(body: Any, default: Any = None) -> bytes:
    try:
        return orjson.dumps(body, default=default)
    except TypeError:  # what orjson refuses (a lone surrogate, a huge int) json escapes
        return json.dumps(body, separators=(",", ":"), default=default).encode()


def body_chunks(body: Any, storage: Storage) -> Iterator[bytes]:
    """The JSON of ``body``, each ``InlineFile`` written as the base64 of its file."""
    files: list[InlineFile] = []
    token = secrets.token_hex(8)  # no client text can name a marker it never saw

    def marker(value: Any) -> str:
        if not isinstance(value, InlineFile):
            raise TypeError(f"{type(value).__name__} is not JSON serialisable")
        files.append(value)
        return f"\x00inline-{token}-{len(files) - 1}\x00"

    text = _dumps(body, default=marker)
    for index, inline in enumerate(files):
        quoted = _dumps(f"\x00inline-{token}-{index}\x00")[1:-1]  # as JSON escaped it
        before, _, text = text.partition(quoted)
        yield before
        yield from _base64_of(storage, inline.key)
    yield text


def materialized(body: Any, storage: Storage) -> Any:
    """``body`` with each ``InlineFile`` replaced by its file's base64 text: for bodies that
    must be whole (a signed webhook, one server-sent event). Call it off the event loop."""
    if isinstance(body, InlineFile):
        return b"".join(_base64_of(storage, body.key)).decode("ascii")
    if isinstance(body, dict):
        return {key: materialized(value, storage) for key, value in body.items()}
    if isinstance(body, list | tuple):
        return [materialized(value, storage) for value in body]
    return body


def _base64_of(storage: Storage, key: str) -> Iterator[bytes]:
    with storage.open_read(key) as source:
        while chunk := source.read(CHUNK_BYTES):
            # SIMD base64 (30x the standard library's): 768 KiB in about 50 us, so no
            # worker thread holds the GIL long enough to stall the event loop's polls.
            yield pybase64.b64encode(chunk)


async def stream_body(body: Any, storage: Storage) -> AsyncIterator[bytes]:
    """``body_chunks`` for a streaming response: each chunk made in a worker thread."""
    async for chunk in _rest(body_chunks(body, storage)):
        yield chunk


@dataclass(frozen=True)
class PreparedBody:
    """A body's first ``WHOLE_BYTES`` or so, and the rest as a stream (``None``: ``head``
    is the whole body)."""

    head: bytes
    rest: AsyncIterator[bytes] | None


async def prepared_body(body: Any, storage: Storage) -> PreparedBody:
    """``body_chunks`` made up to ``WHOLE_BYTES`` in one worker-thread hop."""
    chunks = body_chunks(body, storage)
    parts, finished = await to_thread.run_sync(_take, chunks, WHOLE_BYTES)
    head = b"".join(parts)
    return PreparedBody(head, None if finished else _rest(chunks))


def _take(chunks: Iterator[bytes], limit: int) -> tuple[list[bytes], bool]:
    """Chunks until they hold ``limit`` bytes (False) or run out (True)."""
    parts: list[bytes] = []
    size = 0
    for chunk in chunks:
        parts.append(chunk)
        size += len(chunk)
        if size >= limit:
            return parts, False
    return parts, True


async def _rest(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    done = object()
    while True:
        chunk = await to_thread.run_sync(next, chunks, done)
        if chunk is done:
            return
        assert isinstance(chunk, bytes)
        yield chunk
