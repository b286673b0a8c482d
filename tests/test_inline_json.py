"""Bodies that carry stored files base64-encoded are written as streams (Vertex AI's
inline videos): the JSON is exactly what a whole-body encoder writes, chunks stay bounded,
and no client text can pose as a file marker."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path

from kinema.inline_json import (
    CHUNK_BYTES,
    WHOLE_BYTES,
    body_chunks,
    has_inline,
    materialized,
    prepared_body,
    stream_body,
)
from kinema.storage import LocalStorage
from kinema.views import InlineFile


def stored(tmp_path: Path, key: str, data: bytes) -> LocalStorage:
    storage = LocalStorage(tmp_path / "store")
    storage.put_bytes(key, data)
    return storage


def test_a_streamed_body_is_the_json_a_whole_encoder_writes(tmp_path: Path):
    video = bytes(range(256)) * 10_000 + b"end"  # 2.56 MB: several chunks, not a multiple of 3
    storage = stored(tmp_path, "jobs/a/video-1.mp4", video)
    body = {
        "name": "op/1",
        "response": {
            "videos": [
                {"bytesBase64Encoded": InlineFile("jobs/a/video-1.mp4", len(video))},
                {"mimeType": "video/mp4", "note": "é \u2028 \"quoted\""},
            ]
        },
    }
    chunks = list(body_chunks(body, storage))
    parsed = json.loads(b"".join(chunks))
    assert base64.b64decode(parsed["response"]["videos"][0]["bytesBase64Encoded"]) == video
    assert parsed["response"]["videos"][1] == body["response"]["videos"][1]
    assert max(len(chunk) for chunk in chunks) <= 4 * CHUNK_BYTES // 3
    assert len(chunks) > 3


def test_client_text_that_looks_like_a_marker_stays_text(tmp_path: Path):
    storage = stored(tmp_path, "k.mp4", b"MP4")
    forged = "\x00inline-0000000000000000-0\x00"
    body = {"prompt": forged, "video": InlineFile("k.mp4", 3), "again": forged}
    parsed = json.loads(b"".join(body_chunks(body, storage)))
    assert parsed == {"prompt": forged, "video": base64.b64encode(b"MP4").decode(), "again": forged}


def test_materialized_and_streamed_bodies_agree(tmp_path: Path):
    storage = stored(tmp_path, "k.mp4", b"\x00\x01\x02" * 1000)
    body = {"videos": [{"bytesBase64Encoded": InlineFile("k.mp4", 3000)}], "done": True}
    assert has_inline(body) and not has_inline(materialized(body, storage))

    async def collect() -> bytes:
        return b"".join([chunk async for chunk in stream_body(body, storage)])

    streamed = json.loads(asyncio.run(collect()))
    assert streamed == materialized(body, storage)


def test_a_short_body_is_made_whole_and_a_long_one_streams_its_rest(tmp_path: Path):
    short, long = b"\x07" * 100_000, bytes(range(256)) * 20_000  # 5.12 MB: 6.8 MB of base64
    storage = stored(tmp_path, "short.mp4", short)
    storage.put_bytes("long.mp4", long)

    async def prepare(key: str, size: int) -> tuple[bytes, list[bytes] | None]:
        prepared = await prepared_body({"v": InlineFile(key, size)}, storage)
        rest = None if prepared.rest is None else [chunk async for chunk in prepared.rest]
        return prepared.head, rest

    head, rest = asyncio.run(prepare("short.mp4", len(short)))
    assert rest is None
    assert json.loads(head) == {"v": base64.b64encode(short).decode()}
    head, rest = asyncio.run(prepare("long.mp4", len(long)))
    assert rest  # streamed past the first part, which stays bounded
    assert WHOLE_BYTES <= len(head) <= WHOLE_BYTES + 4 * CHUNK_BYTES // 3
    assert json.loads(head + b"".join(rest)) == {"v": base64.b64encode(long).decode()}
