"""The Python client (sync and async) against a live server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from kinema.client import AsyncKinemaClient, GenerationFailed, KinemaAPIError, KinemaClient
from tests.dialects import catalog_on_engine
from tests.support import LiveServer, encode_image, live_server, make_settings, pattern_image, probe


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(make_settings(tmp_path_factory.mktemp("client")), workers=1) as live:
        yield live


def test_sync_client_generates_from_image_bytes(server: LiveServer, tmp_path: Path):
    updates: list[str] = []
    with KinemaClient(server.url, server.api_key, poll_initial_s=0.1) as client:
        path = client.generate(
            encode_image(pattern_image()), "zoom out", output=tmp_path / "a.mp4",
            model="google/veo-3.0-i2v-fast", duration=4, generate_audio=False,
            on_update=lambda g: updates.append(g["status"]),
        )
    assert probe(path.read_bytes()).frames == 96
    assert updates[-1] == "completed" and updates[0] in ("queued", "generating")


def test_async_client_generates_from_a_file(server: LiveServer, tmp_path: Path):
    image = tmp_path / "in.png"
    pattern_image().save(image)

    async def run() -> Path:
        async with AsyncKinemaClient(server.url, server.api_key, poll_initial_s=0.1) as client:
            return await client.generate(image, "tilt up", output=tmp_path / "b.mp4",
                                         model="google/veo-3.1-i2v", duration=4,
                                         resolution="720p")

    facts = probe(asyncio.run(run()).read_bytes())
    assert (facts.width, facts.height, facts.audio_codec) == (1280, 720, "aac")


def test_client_raises_api_errors_with_the_details(server: LiveServer):
    with KinemaClient(server.url, server.api_key) as client, pytest.raises(KinemaAPIError) as info:
        client.create("x", encode_image(pattern_image()), duration=5)
    assert info.value.status_code == 400 and "duration" in str(info.value)


@pytest.fixture(scope="module")
def failing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server whose every model's engine raises (``CrashingEngine``)."""
    directory = tmp_path_factory.mktemp("failing-client")
    catalog = catalog_on_engine(directory, "CrashingEngine")
    with live_server(make_settings(directory, catalog_path=catalog), workers=1) as live:
        yield live


def test_wait_raises_when_the_generation_fails(failing: LiveServer):
    with KinemaClient(failing.url, failing.api_key, poll_initial_s=0.05) as client:
        created = client.create("x", encode_image(pattern_image()), duration=4)
        with pytest.raises(GenerationFailed, match="the model exploded") as info:
            client.wait(created["id"], timeout_s=60)
    assert info.value.generation["id"] == created["id"]
    assert info.value.generation["status"] == "error"


def test_async_wait_raises_when_the_generation_fails(failing: LiveServer):
    async def run() -> None:
        async with AsyncKinemaClient(failing.url, failing.api_key, poll_initial_s=0.05) as client:
            created = await client.create("x", encode_image(pattern_image()), duration=4)
            await client.wait(created["id"], timeout_s=60)

    with pytest.raises(GenerationFailed, match="the model exploded"):
        asyncio.run(run())


def test_wait_raises_when_the_generation_is_cancelled(server: LiveServer):
    with KinemaClient(server.url, server.api_key, poll_initial_s=0.05) as client:
        created = client.create("x", encode_image(pattern_image()), duration=8)
        job_id = created["id"].split(":")[0].replace("-", "")
        server.runtime.store.cancel(server.runtime.keys.list()[0].id, job_id)
        with pytest.raises(GenerationFailed, match="Cancelled"):
            client.wait(created["id"], timeout_s=60)
