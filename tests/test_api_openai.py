"""OpenAI's Videos API end to end: the official ``openai`` SDK and raw HTTP on loopback."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest
from openai import OpenAI
from openai.types import Video
from PIL import Image, ImageOps

from kinema.media import spritesheet
from tests.support import (
    LiveServer,
    data_uri,
    encode_image,
    first_frame,
    live_server,
    make_settings,
    pattern_image,
    probe,
)
from tests.webhook_receiver import Receiver

# The SDK marks client.videos deprecated (OpenAI is retiring Sora); the wire API is what counts.
pytestmark = pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning")

VEO = "veo-3.1-fast-generate-preview"
FAST_POLL_MS = 100
VIDEO_KEYS = {
    "id",
    "object",
    "model",
    "status",
    "progress",
    "created_at",
    "completed_at",
    "expires_at",
    "prompt",
    "size",
    "seconds",
    "remixed_from_video_id",
    "error",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    # Loopback is allowed so a test can name a callback URL that stays on this machine.
    settings = make_settings(tmp_path_factory.mktemp("openai"), fetch_allow_hosts=["127.0.0.1"])
    with live_server(settings, workers=2) as live:
        yield live


def sdk(server: LiveServer, api_key: str | None = None) -> OpenAI:
    return OpenAI(api_key=api_key or server.api_key, base_url=server.url + "/v1", timeout=60)


@pytest.fixture(scope="module")
def client(server: LiveServer) -> OpenAI:
    return sdk(server)


@pytest.fixture(scope="module")
def portrait(client: OpenAI) -> Video:
    """A finished 4 s portrait sora-2 video, polled at the pace the server asks for."""
    reference = ("reference.png", encode_image(pattern_image(640, 360, seed=5)), "image/png")
    return client.videos.create_and_poll(
        model="sora-2",
        prompt="She says: 'Hello there'",
        seconds="4",
        size="720x1280",
        input_reference=reference,
    )


@pytest.fixture(scope="module")
def landscape(
    client: OpenAI, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Video, Image.Image]:
    """A finished 4 s landscape video whose first frame came from a file path."""
    image = pattern_image(800, 600, seed=3)
    path = tmp_path_factory.mktemp("refs") / "first.png"
    image.save(path)
    video = client.videos.create_and_poll(
        model="sora-2",
        prompt="The camera stays still.",
        seconds="4",
        size="1280x720",
        input_reference=path,
        poll_interval_ms=FAST_POLL_MS,
    )
    return video, image


def job_dir(server: LiveServer, video_id: str) -> Path:
    return server.runtime.settings.resolved_storage_dir / "jobs" / video_id.removeprefix("video_")


def wait_until_rendering(http: httpx.Client, video_id: str) -> dict:
    """The video once its frames are being made (progress shows), or once it ended."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        body = http.get(f"/v1/videos/{video_id}").json()
        if body["status"] in ("completed", "failed") or body["progress"] > 0:
            return body
        time.sleep(0.02)
    raise AssertionError(f"{video_id} never started rendering")


def assert_openai_error(response: httpx.Response, status: int, kind: str, param: str | None):
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == kind
    assert error["param"] == param, error
    assert error["message"]


# --- the official SDK ---


def test_sdk_create_and_poll_completes_a_portrait_video(server: LiveServer, portrait: Video):
    assert portrait.status == "completed", portrait
    assert portrait.id.startswith("video_")
    assert portrait.object == "video"
    assert (portrait.model, portrait.size, portrait.seconds) == ("sora-2", "720x1280", "4")
    assert portrait.progress == 100
    assert portrait.error is None and portrait.remixed_from_video_id is None
    assert portrait.completed_at is not None and portrait.expires_at is not None
    assert portrait.created_at <= portrait.completed_at
    assert portrait.expires_at - portrait.completed_at == server.runtime.settings.url_ttl_s


def test_sdk_downloads_the_video_and_its_thumbnail(client: OpenAI, portrait: Video):
    video = client.videos.download_content(portrait.id)
    facts = probe(video.content)
    assert (facts.width, facts.height, facts.frames) == (720, 1280, 96)
    assert (facts.video_codec, facts.audio_codec) == ("h264", "aac")
    assert facts.audio_duration_s == pytest.approx(4.0, abs=0.1)
    thumbnail = client.videos.download_content(portrait.id, variant="thumbnail")
    picture = Image.open(io.BytesIO(thumbnail.content))
    assert picture.format == "JPEG"
    assert picture.width / picture.height == pytest.approx(720 / 1280, abs=0.01)


def test_sdk_uploads_a_file_path_as_the_first_frame(client: OpenAI, landscape):
    video, image = landscape
    assert video.status == "completed", video
    assert video.size == "1280x720"
    data = client.videos.download_content(video.id).content
    facts = probe(data)
    assert (facts.width, facts.height, facts.frames) == (1280, 720, 96)
    expected = np.asarray(ImageOps.fit(image, (1280, 720), Image.Resampling.BICUBIC))
    assert np.abs(first_frame(data).astype(int) - expected.astype(int)).mean() < 8


def test_sdk_serves_a_google_model_id(client: OpenAI):
    video = client.videos.create_and_poll(
        model=VEO,
        prompt="waves roll in",
        seconds="4",
        size="1280x720",
        poll_interval_ms=FAST_POLL_MS,
        extra_body={"generate_audio": False},
    )
    assert video.status == "completed", video
    assert (video.model, video.size, video.seconds) == (VEO, "1280x720", "4")
    facts = probe(client.videos.download_content(video.id).content)
    assert (facts.width, facts.height, facts.frames) == (1280, 720, 96)
    assert facts.audio_codec is None, "the generate_audio extension reached the engine"


def test_sdk_sends_image_url_as_a_form_field(server: LiveServer, client: OpenAI):
    # This SDK refuses input_reference={"image_url": ...} client-side (it expects a file
    # there), so a URL goes through extra_body, which it sends as input_reference[image_url].
    created = client.videos.create(
        prompt="pan left",
        extra_body={"input_reference": {"image_url": data_uri(pattern_image(320, 180))}},
    )
    job = server.runtime.store.get_any(created.id.removeprefix("video_"))
    assert job.request.image is not None and job.request.image.startswith("jobs/")
    assert created.size == "720x1280", "OpenAI's default size"
    assert created.seconds == "4"
    client.videos.delete(created.id)


def test_callback_url_gets_a_signed_event_with_the_video_object(
    server: LiveServer, client: OpenAI
):
    with Receiver() as receiver:
        created = client.videos.create(
            prompt="pan left",
            size="1280x720",
            extra_body={"callback_url": receiver.url, "generate_audio": False},
        )
        finished = client.videos.poll(created.id, poll_interval_ms=FAST_POLL_MS)
        assert finished.status == "completed", finished
        [delivery] = receiver.wait_for(1)
    owner = server.runtime.store.get_any(created.id.removeprefix("video_")).owner
    event = delivery.verified(server.runtime.service.webhook_secret(owner))
    assert event["type"] == "generation.completed"
    data = event["data"]
    assert set(data) == VIDEO_KEYS
    assert (data["id"], data["object"], data["status"]) == (created.id, "video", "completed")
    assert (data["size"], data["seconds"], data["progress"]) == ("1280x720", "4", 100)
    client.videos.delete(created.id)


def test_sdk_list_paginates_newest_first(server: LiveServer):
    client = sdk(server, server.new_key("lister"))
    quiet = {"generate_audio": False}
    ids = [
        client.videos.create(prompt=f"clip {i}", size="1280x720", extra_body=quiet).id
        for i in range(3)
    ]
    try:
        first = client.videos.list(limit=2)
        assert [v.id for v in first.data] == ids[::-1][:2]
        assert first.has_more is True and first.last_id == ids[1]
        assert [v.id for v in client.videos.list(limit=2)] == ids[::-1]
        assert [v.id for v in client.videos.list(limit=2, order="asc")] == ids
        last = client.videos.list(limit=2, after=ids[1])
        assert [v.id for v in last.data] == [ids[0]] and last.has_more is False
    finally:
        for video_id in ids:
            assert client.videos.delete(video_id).deleted


def test_sdk_delete_removes_the_video_and_its_files(server: LiveServer, client: OpenAI):
    video = client.videos.create_and_poll(
        prompt="a slow zoom",
        seconds="4",
        size="1280x720",
        poll_interval_ms=FAST_POLL_MS,
        extra_body={"generate_audio": False},
    )
    assert video.status == "completed"
    client.videos.download_content(video.id, variant="spritesheet")
    assert (job_dir(server, video.id) / "spritesheet.jpg").is_file()
    deleted = client.videos.delete(video.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (video.id, "video.deleted", True)
    assert not job_dir(server, video.id).exists()
    with pytest.raises(openai.NotFoundError):
        client.videos.retrieve(video.id)
    with pytest.raises(openai.NotFoundError):
        client.videos.download_content(video.id)
    with pytest.raises(openai.NotFoundError):
        client.videos.delete(video.id)


def test_sdk_raises_bad_request_naming_the_param(client: OpenAI):
    with pytest.raises(openai.BadRequestError) as caught:
        client.videos.create(prompt="x", size="640x480")  # type: ignore[arg-type]
    assert caught.value.param == "size"
    assert caught.value.type == "invalid_request_error"


def test_sdk_wrong_key_is_an_authentication_error(server: LiveServer):
    with pytest.raises(openai.AuthenticationError):
        sdk(server, "kin_not-a-real-key").videos.list()


# --- raw HTTP ---


def test_json_create_returns_every_field_and_a_poll_hint(server: LiveServer):
    with server.client() as http:
        response = http.post(
            "/v1/videos",
            json={
                "prompt": "tilt up",
                "model": "sora-2",
                "seconds": 4,
                "size": "1280x720",
                "input_reference": {"image_url": data_uri(pattern_image())},
            },
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == VIDEO_KEYS
        assert body["status"] in ("queued", "in_progress")
        assert body["completed_at"] is None and body["expires_at"] is None
        assert body["error"] is None and body["remixed_from_video_id"] is None
        assert (body["size"], body["seconds"], body["prompt"]) == ("1280x720", "4", "tilt up")
        assert response.headers["openai-poll-after-ms"] == "1000"
        polled = http.get(f"/v1/videos/{body['id']}")
        # A 4 s video takes far longer to render than this one round trip.
        assert polled.json()["status"] in ("queued", "in_progress")
        assert polled.headers["openai-poll-after-ms"] == "1000"
        assert http.delete(f"/v1/videos/{body['id']}").json()["deleted"] is True


def test_json_input_reference_may_be_a_plain_string(server: LiveServer):
    with server.client() as http:
        response = http.post(
            "/v1/videos",
            json={"prompt": "x", "size": "1280x720", "input_reference": data_uri(pattern_image())},
        )
        assert response.status_code == 200, response.text
        http.delete(f"/v1/videos/{response.json()['id']}")


def test_idempotency_key_returns_the_same_video_for_the_same_body(server: LiveServer):
    body = {"prompt": "again", "size": "1280x720", "input_reference": data_uri(pattern_image())}
    key = {"Idempotency-Key": "openai-retry-1"}
    with server.client() as http:
        first = http.post("/v1/videos", json=body, headers=key).json()
        second = http.post("/v1/videos", json=body, headers=key).json()
        assert first["id"] == second["id"]
        changed = http.post("/v1/videos", json=body | {"prompt": "other"}, headers=key)
        assert_openai_error(changed, 422, "invalid_request_error", None)
        http.delete(f"/v1/videos/{first['id']}")


def test_finished_video_has_no_poll_hint(server: LiveServer, portrait: Video):
    with server.client() as http:
        response = http.get(f"/v1/videos/{portrait.id}")
    assert response.json()["status"] == "completed"
    assert "openai-poll-after-ms" not in response.headers


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"prompt": "x", "seconds": "5"}, "seconds"),
        ({"prompt": "x", "size": "1000x1000"}, "size"),
        ({"prompt": "x", "size": "1920x1080"}, "size"),
        ({"prompt": "x", "model": VEO, "size": "1024x1792"}, "size"),
        ({"prompt": "x", "size": "big"}, "size"),
        ({"prompt": "x", "model": "sora-9"}, "model"),
        ({"prompt": "x", "model": "google/veo-3.1-i2v"}, "model"),
        ({"prompt": "x", "style": "noir"}, "style"),
        ({"seconds": "4"}, "prompt"),
        ({"prompt": "x", "input_reference": "not an image!"}, "input_reference"),
        ({"prompt": "x", "input_reference": {"file_id": "file_1"}}, "input_reference.file_id"),
        ({"prompt": "x", "callback_url": "ftp://example.com"}, "callback_url"),
        ({"prompt": "x", "model": VEO, "seconds": "4", "size": "1920x1080"}, "seconds"),
    ],
)
def test_invalid_json_create_is_a_400_naming_the_param(server: LiveServer, body: dict, param: str):
    with server.client() as http:
        response = http.post("/v1/videos", json=body)
    assert_openai_error(response, 400, "invalid_request_error", param)


@pytest.mark.parametrize(
    ("form", "param"),
    [
        ({"prompt": "x", "seconds": "5"}, "seconds"),
        ({"prompt": "x", "size": "1920x1080"}, "size"),
        ({"prompt": "x", "input_reference[image_url]": "abc$"}, "input_reference[image_url]"),
        ({"prompt": "x", "input_reference[file_id]": "file_1"}, "input_reference[file_id]"),
    ],
)
def test_invalid_multipart_create_is_a_400_naming_the_param(
    server: LiveServer, form: dict, param: str
):
    parts = {name: (None, value) for name, value in form.items()}
    with server.client() as http:
        response = http.post("/v1/videos", files=parts)
    assert_openai_error(response, 400, "invalid_request_error", param)


def test_urlencoded_form_create_is_accepted(server: LiveServer):
    with server.client() as http:
        response = http.post("/v1/videos", data={"prompt": "x", "seconds": "8", "size": "720x1280"})
        assert response.status_code == 200, response.text
        assert response.json()["seconds"] == "8"
        http.delete(f"/v1/videos/{response.json()['id']}")


def test_uploaded_file_that_is_not_an_image_is_a_400(server: LiveServer):
    gif = io.BytesIO()
    pattern_image(64, 64).save(gif, "GIF")
    with server.client() as http:
        response = http.post(
            "/v1/videos",
            data={"prompt": "x"},
            files={"input_reference": ("a.gif", gif.getvalue(), "image/gif")},
        )
    assert_openai_error(response, 400, "invalid_request_error", "input_reference")
    assert "GIF" in response.json()["error"]["message"]


def test_body_that_is_not_json_is_a_400(server: LiveServer):
    with server.client() as http:
        response = http.post(
            "/v1/videos", content=b"{nope", headers={"content-type": "application/json"}
        )
    assert_openai_error(response, 400, "invalid_request_error", None)


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("order=sideways", "order"),
        ("after=x", "after"),
    ],
)
def test_invalid_list_query_is_a_400(server: LiveServer, query: str, param: str):
    with server.client() as http:
        response = http.get(f"/v1/videos?{query}")
    assert_openai_error(response, 400, "invalid_request_error", param)


def test_missing_key_is_a_401(server: LiveServer):
    with server.client(api_key="") as anonymous:
        for response in (
            anonymous.get("/v1/videos"),
            anonymous.get("/v1/videos/video_" + "0" * 32),
            anonymous.post("/v1/videos", json={"prompt": "x"}),
        ):
            assert_openai_error(response, 401, "authentication_error", None)


def test_another_keys_video_is_a_404(server: LiveServer, portrait: Video):
    with server.client(api_key=server.new_key()) as other:
        for response in (
            other.get(f"/v1/videos/{portrait.id}"),
            other.get(f"/v1/videos/{portrait.id}/content"),
            other.delete(f"/v1/videos/{portrait.id}"),
        ):
            assert_openai_error(response, 404, "not_found_error", None)
        assert portrait.id not in [v["id"] for v in other.get("/v1/videos").json()["data"]]
    with server.client() as owner:
        assert owner.get(f"/v1/videos/{portrait.id}").status_code == 200


def test_malformed_video_id_is_a_404(server: LiveServer):
    with server.client() as http:
        for video_id in ("nope", "video_xyz", "video_" + "A" * 32):
            assert_openai_error(http.get(f"/v1/videos/{video_id}"), 404, "not_found_error", None)


def test_video_download_supports_ranges(server: LiveServer, portrait: Video):
    with server.client() as http:
        whole = http.get(f"/v1/videos/{portrait.id}/content")
        assert whole.status_code == 200 and whole.headers["content-type"] == "video/mp4"
        part = http.get(f"/v1/videos/{portrait.id}/content", headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and part.content == whole.content[:100]


def test_spritesheet_is_a_grid_of_the_videos_frames(server: LiveServer, landscape):
    video, _ = landscape
    with server.client() as http:
        response = http.get(f"/v1/videos/{video.id}/content", params={"variant": "spritesheet"})
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "image/jpeg"
        again = http.get(f"/v1/videos/{video.id}/content", params={"variant": "spritesheet"})
        mp4 = http.get(f"/v1/videos/{video.id}/content").content
    assert again.content == response.content, "built once, then served from storage"
    sheet = Image.open(io.BytesIO(response.content))
    assert sheet.format == "JPEG"
    tile_w, tile_h = spritesheet.TILE_SIDE, round(spritesheet.TILE_SIDE * 720 / 1280)
    assert sheet.size == (tile_w * spritesheet.COLUMNS, tile_h * spritesheet.ROWS)
    first_tile = np.asarray(sheet.crop((0, 0, tile_w, tile_h)), dtype=int)
    expected = np.asarray(Image.fromarray(first_frame(mp4)).resize((tile_w, tile_h)), dtype=int)
    assert np.abs(first_tile - expected).mean() < 10
    assert (job_dir(server, video.id) / "spritesheet.jpg").is_file()


def test_unknown_variant_is_a_400(server: LiveServer, portrait: Video):
    with server.client() as http:
        response = http.get(f"/v1/videos/{portrait.id}/content", params={"variant": "gif"})
    assert_openai_error(response, 400, "invalid_request_error", "variant")


def test_delete_cancels_a_running_1080p_video_quickly(server: LiveServer):
    with server.client() as http:
        created = http.post(
            "/v1/videos",
            json={"model": VEO, "prompt": "a long take", "seconds": "8", "size": "1920x1080"},
        )
        assert created.status_code == 200, created.text
        video_id = created.json()["id"]
        running = wait_until_rendering(http, video_id)
        assert running["status"] == "in_progress", running
        assert running["size"] == "1920x1080" and running["seconds"] == "8"
        early = http.get(f"/v1/videos/{video_id}/content")
        assert_openai_error(early, 404, "not_found_error", None)
        started = time.monotonic()
        deleted = http.delete(f"/v1/videos/{video_id}")
        elapsed = time.monotonic() - started
        assert deleted.status_code == 200, deleted.text
        assert deleted.json() == {"id": video_id, "object": "video.deleted", "deleted": True}
        assert elapsed < 2.0, f"delete took {elapsed:.2f} s"
        assert http.get(f"/v1/videos/{video_id}").status_code == 404
    assert video_id.removeprefix("video_") not in server.runtime.pool.running_jobs  # type: ignore[union-attr]
    assert not job_dir(server, video_id).exists()


# --- servers with other settings ---


def test_video_still_running_elsewhere_is_a_409_until_its_worker_stops(tmp_path: Path):
    settings = make_settings(tmp_path, heartbeat_s=0.2)
    with live_server(settings, workers=0) as live, live.client() as http:
        created = http.post("/v1/videos", json={"prompt": "x", "size": "1280x720"}).json()
        job = live.runtime.store.claim_next(worker_id="elsewhere", lease_s=60)
        assert job is not None and job.id == created["id"].removeprefix("video_")
        refused = http.delete(f"/v1/videos/{created['id']}")
        assert_openai_error(refused, 409, "invalid_request_error", None)
        assert live.runtime.store.get_any(job.id).cancel_requested
        live.runtime.store.acknowledge_cancel(job.id, job.attempt)
        cancelled = http.get(f"/v1/videos/{created['id']}").json()
        assert cancelled["status"] == "failed"
        assert cancelled["error"]["code"] == "cancelled"
        assert http.delete(f"/v1/videos/{created['id']}").json()["deleted"] is True


def test_rate_limited_key_gets_429_with_retry_after(tmp_path: Path):
    settings = make_settings(tmp_path, rate_limit_per_minute=2)
    with live_server(settings, workers=0) as live, live.client() as http:
        statuses = [http.get("/v1/videos").status_code for _ in range(3)]
        assert statuses == [200, 200, 429]
        response = http.get("/v1/videos")
    assert_openai_error(response, 429, "rate_limit_exceeded", None)
    assert int(response.headers["Retry-After"]) >= 1
