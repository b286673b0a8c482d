"""The AI/ML API dialect end to end: real HTTP on loopback, real MP4s checked with PyAV."""

from __future__ import annotations

import io
import time
import uuid
from collections.abc import Iterator

import numpy as np
import pytest
from PIL import Image, ImageOps

from kinema.api.dialects.aimlapi import EXTEND_MODELS
from kinema.catalog import Catalog
from tests.support import (
    LiveServer,
    data_uri,
    first_frame,
    live_server,
    make_settings,
    pattern_image,
    poll_until_done,
    probe,
)

I2V = "google/veo-3.1-i2v-fast"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = make_settings(tmp_path_factory.mktemp("aiml"))
    with live_server(settings, workers=2) as live:
        yield live


@pytest.fixture(scope="module")
def image_uri() -> str:
    return data_uri(pattern_image(640, 360))


def create(server: LiveServer, body: dict, **kwargs: object) -> dict:
    with server.client() as client:
        response = client.post("/v2/video/generations", json=body, **kwargs)  # type: ignore[arg-type]
        assert response.status_code == 200, response.text
        return response.json()


def download(server: LiveServer, url: str) -> bytes:
    with server.client() as client:
        response = client.get(url)
        assert response.status_code == 200, response.text
        return response.content


def test_create_returns_the_new_generation_with_model_in_id(server: LiveServer, image_uri: str):
    body = create(
        server,
        {
            "model": I2V,
            "prompt": "static shot",
            "image_url": image_uri,
            "duration": 4,
            "resolution": "720p",
        },
    )
    assert body["status"] in ("queued", "generating")
    head, model = body["id"].split(":", 1)
    assert model == I2V
    uuid.UUID(head)
    assert body["video"] is None and body["error"] is None


def test_i2v_720p_video_is_exact_and_starts_with_the_cropped_image(server: LiveServer):
    image = pattern_image(800, 600, seed=3)  # 4:3, so covering 16:9 crops top and bottom
    created = create(
        server,
        {
            "model": I2V,
            "prompt": "The camera stays still.",
            "image_url": data_uri(image),
            "duration": 4,
            "resolution": "720p",
            "generate_audio": False,
        },
    )
    with server.client() as client:
        done = poll_until_done(client, created["id"])
    assert done["status"] == "completed", done
    assert done["video"]["duration"] == pytest.approx(4.0, abs=0.05)
    assert done["progress"] == 100
    data = download(server, done["video"]["url"])
    facts = probe(data)
    assert (facts.width, facts.height) == (1280, 720)
    assert facts.frames == 4 * 24
    assert facts.duration_s == pytest.approx(4.0, abs=1 / 24)
    assert facts.video_codec == "h264"
    assert facts.audio_codec is None
    expected = np.asarray(ImageOps.fit(image, (1280, 720), Image.Resampling.BICUBIC))
    diff = np.abs(first_frame(data).astype(int) - expected.astype(int)).mean()
    assert diff < 8, f"first frame differs from the cropped input by {diff:.1f} on average"


def test_portrait_request_swaps_the_frame_size_and_adds_audio(server: LiveServer, image_uri: str):
    created = create(
        server,
        {
            "model": "google/veo-3.0-i2v",
            "prompt": "She says: 'Hello there'",
            "image_url": image_uri,
            "duration": "4",
            "aspect_ratio": "9:16",
            "resolution": "720P",
        },
    )
    with server.client() as client:
        done = poll_until_done(client, created["id"])
    assert done["status"] == "completed", done
    facts = probe(download(server, done["video"]["url"]))
    assert (facts.width, facts.height) == (720, 1280)
    assert facts.audio_codec == "aac"
    assert facts.audio_duration_s == pytest.approx(4.0, abs=0.1)


def test_legacy_path_creates_with_201_and_polls(server: LiveServer, image_uri: str):
    with server.client() as client:
        response = client.post(
            "/v2/generate/video/google/generation",
            json={
                "model": "google/veo-3.0-i2v-fast",
                "prompt": "pan left",
                "image_url": image_uri,
                "duration": 4,
            },
        )
        assert response.status_code == 201, response.text
        generation_id = response.json()["id"]
        polled = client.get(
            "/v2/generate/video/google/generation", params={"generation_id": generation_id}
        )
        assert polled.status_code == 200
        assert polled.json()["id"] == generation_id


def test_id_with_colon_and_slash_survives_query_encoding(server: LiveServer, image_uri: str):
    created = create(
        server, {"model": "veo2/image-to-video", "prompt": "tilt up", "image_url": image_uri}
    )
    assert ":" in created["id"] and "/" in created["id"]
    with server.client() as client:
        encoded = client.get("/v2/video/generations", params={"generation_id": created["id"]})
        raw = client.get(f"/v2/video/generations?generation_id={created['id']}")
    assert encoded.json()["id"] == created["id"]
    assert raw.json()["id"] == created["id"]


def test_text_to_video_needs_no_image(server: LiveServer):
    created = create(
        server,
        {
            "model": "google/veo-3.1-t2v-fast",
            "prompt": "a sunset over the ocean",
            "duration": 4,
            "resolution": "720p",
            "generate_audio": False,
            "seed": 7,
        },
    )
    with server.client() as client:
        done = poll_until_done(client, created["id"])
    assert done["status"] == "completed", done
    facts = probe(download(server, done["video"]["url"]))
    assert (facts.width, facts.height, facts.frames) == (1280, 720, 96)


# --- validation: every model, in the dialect's own error envelope ---


def _valid_body(model_id: str, image: str) -> dict:
    spec = Catalog.load().models[model_id]
    body: dict = {"model": model_id, "prompt": "a slow push-in"}
    if spec.inputs in ("image", "first_last"):
        body["image_url"] = image
    if spec.inputs == "first_last":
        body["last_image_url"] = image
    if spec.inputs == "reference":
        body["image_urls"] = [image]
    if model_id in EXTEND_MODELS:  # refused before the video is read: any will do
        body["video_url"] = "data:video/mp4;base64,AAAA"
    return body


AIML_MODELS = Catalog.load().model_ids("aimlapi")


def assert_validation_error(response, field: str) -> None:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["message"] == "Body validation error!"
    assert body["statusCode"] == 400
    assert body["path"] == "/v2/video/generations"
    assert {"requestId", "timestamp"} <= body.keys()
    assert any(d["path"][:1] == [field] for d in body["details"]), body["details"]


@pytest.mark.parametrize("model_id", AIML_MODELS)
def test_every_model_refuses_a_bad_duration(server: LiveServer, image_uri: str, model_id: str):
    shortest = min(Catalog.load().models[model_id].durations)
    body = _valid_body(model_id, image_uri) | {"duration": shortest - 1}
    with server.client() as client:
        assert_validation_error(client.post("/v2/video/generations", json=body), "duration")


@pytest.mark.parametrize("model_id", AIML_MODELS)
def test_every_model_requires_its_inputs(server: LiveServer, image_uri: str, model_id: str):
    body = _valid_body(model_id, image_uri)
    spec = Catalog.load().models[model_id]
    field = {
        "image": "image_url",
        "first_last": "image_url",
        "reference": "image_urls",
        "text": "prompt",
        "any": "prompt",  # text alone or an image: with neither, the prompt is required
    }[spec.inputs]
    if model_id in EXTEND_MODELS:
        field = "video_url"
    body.pop(field)
    with server.client() as client:
        assert_validation_error(client.post("/v2/video/generations", json=body), field)


@pytest.mark.parametrize("model_id", AIML_MODELS)
def test_every_model_refuses_fields_it_does_not_take(
    server: LiveServer, image_uri: str, model_id: str
):
    spec = Catalog.load().models[model_id]
    extra = "auto_fix" if "auto_fix" not in spec.options else "resolution_typo"
    body = _valid_body(model_id, image_uri) | {extra: True}
    with server.client() as client:
        assert_validation_error(client.post("/v2/video/generations", json=body), extra)


@pytest.mark.parametrize("model_id", AIML_MODELS)
def test_every_model_refuses_a_resolution_it_lacks(
    server: LiveServer, image_uri: str, model_id: str
):
    lacking = next(r for r in ("4k", "8k") if r not in Catalog.load().models[model_id].resolutions)
    body = _valid_body(model_id, image_uri) | {"resolution": lacking}
    with server.client() as client:
        assert_validation_error(client.post("/v2/video/generations", json=body), "resolution")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"model": I2V, "prompt": "x", "image_url": "img", "aspect_ratio": "4:3"}, "aspect_ratio"),
        (
            {"model": I2V, "prompt": "x", "image_url": "img", "generate_audio": "loud"},
            "generate_audio",
        ),
        ({"model": "google/veo-3.0-i2v", "prompt": "x", "image_url": "img", "seed": -1}, "seed"),
        (
            {
                "model": "veo2/image-to-video",
                "prompt": "x",
                "image_url": "img",
                "generate_audio": True,
            },
            "generate_audio",
        ),
        ({"model": I2V, "prompt": "", "image_url": "img"}, "prompt"),
        ({"model": I2V, "prompt": "x" * 5001, "image_url": "img"}, "prompt"),
        (
            {
                "model": "google/veo-3.1-reference-to-video",
                "prompt": "x",
                "image_urls": ["a", "b", "c", "d"],
            },
            "image_urls",
        ),
        ({"prompt": "x", "image_url": "img"}, "model"),
    ],
)
def test_bad_values_are_named_in_the_error(server: LiveServer, body: dict, field: str):
    with server.client() as client:
        assert_validation_error(client.post("/v2/video/generations", json=body), field)


def test_unknown_model_lists_the_models_served(server: LiveServer):
    with server.client() as client:
        response = client.post(
            "/v2/video/generations", json={"model": "google/veo-9", "prompt": "x"}
        )
    assert response.status_code == 400
    assert "google/veo-3.1-i2v-fast" in response.json()["details"][0]["message"]


def test_body_that_is_not_json_is_a_400(server: LiveServer):
    with server.client() as client:
        response = client.post(
            "/v2/video/generations", content=b"{nope", headers={"content-type": "application/json"}
        )
    assert response.status_code == 400
    assert response.json()["statusCode"] == 400


def test_bad_image_is_a_400_that_says_why(server: LiveServer):
    gif = io.BytesIO()
    pattern_image(64, 64).save(gif, "GIF")
    import base64

    body = {
        "model": I2V,
        "prompt": "x",
        "image_url": "data:image/gif;base64," + base64.b64encode(gif.getvalue()).decode(),
    }
    with server.client() as client:
        response = client.post("/v2/video/generations", json=body)
    assert_validation_error(response, "image_url")
    assert "GIF" in response.json()["details"][0]["message"]


# --- keys and isolation ---


def test_missing_and_invalid_keys_get_401(server: LiveServer):
    with server.client(api_key="") as anonymous:
        response = anonymous.get("/v2/video/generations", params={"generation_id": "x"})
    assert response.status_code == 401
    assert response.json()["statusCode"] == 401
    with server.client(api_key="kin_not-a-real-key") as wrong:
        assert wrong.post("/v2/video/generations", json={"model": I2V}).status_code == 401


def test_revoked_key_gets_401_once_the_key_cache_lapses(server: LiveServer):
    secret = server.new_key("short-lived")
    key = next(k for k in server.runtime.keys.list() if secret.startswith(k.prefix))
    params = {"generation_id": "x"}
    with server.client(api_key=secret) as client:
        assert client.get("/v2/video/generations", params=params).status_code == 404
        server.runtime.keys.revoke(key.id)
        revoked_at = time.monotonic()
        while client.get("/v2/video/generations", params=params).status_code != 401:
            assert time.monotonic() - revoked_at < server.runtime.settings.key_cache_s + 1
            time.sleep(0.05)


def test_another_keys_generation_is_404(server: LiveServer, image_uri: str):
    created = create(server, {"model": I2V, "prompt": "x", "image_url": image_uri, "duration": 4})
    with server.client(api_key=server.new_key()) as other:
        response = other.get("/v2/video/generations", params={"generation_id": created["id"]})
    assert response.status_code == 404
    assert response.json()["statusCode"] == 404


# --- idempotency ---


def test_idempotency_key_returns_the_same_job_for_the_same_body(server: LiveServer, image_uri: str):
    body = {"model": I2V, "prompt": "again", "image_url": image_uri, "duration": 4}
    key = {"Idempotency-Key": uuid.uuid4().hex}
    first = create(server, body, headers=key)
    second = create(server, body, headers=key)
    assert first["id"] == second["id"]
    with server.client() as client:
        response = client.post(
            "/v2/video/generations", json=body | {"prompt": "other"}, headers=key
        )
    assert response.status_code == 422
    assert response.json()["statusCode"] == 422


# --- downloads ---


def test_download_link_is_signed_expiring_and_supports_ranges(server: LiveServer, image_uri: str):
    created = create(
        server,
        {
            "model": I2V,
            "prompt": "x",
            "image_url": image_uri,
            "duration": 4,
            "resolution": "720p",
            "generate_audio": False,
        },
    )
    with server.client() as client:
        done = poll_until_done(client, created["id"])
        url = done["video"]["url"]
        assert url.startswith(server.url + "/files/")
        whole = client.get(url)
        assert whole.status_code == 200 and whole.headers["content-type"] == "video/mp4"
        part = client.get(url, headers={"Range": "bytes=0-99"})
        assert part.status_code == 206 and part.content == whole.content[:100]
        tampered = url.replace("expires=", "expires=9")
        assert client.get(tampered).status_code == 403
        bad_signature = url[:-4] + ("0000" if not url.endswith("0000") else "1111")
        assert client.get(bad_signature).status_code == 403
        unsigned = url.split("?")[0]
        assert client.get(unsigned).status_code == 403
        key = done["video"]["url"].split("/files/")[1].split("?")[0]
        expired = server.runtime.signer.path_for(key, ttl_s=-10)
        assert client.get(expired).status_code == 410


def last_frame(data: bytes) -> np.ndarray:
    import av

    with av.open(io.BytesIO(data)) as container:
        frame = None
        for frame in container.decode(video=0):  # noqa: B007 - keep the last one
            pass
        assert frame is not None
        return frame.to_ndarray(format="rgb24")


def test_reference_video_starts_on_the_first_reference_image(server: LiveServer):
    reference = pattern_image(640, 360, seed=11)
    created = create(
        server,
        {
            "model": "google/veo-3.1-reference-to-video",
            "prompt": "static",
            "image_urls": [data_uri(reference), data_uri(pattern_image())],
            "resolution": "720p",
            "generate_audio": False,
        },
    )
    with server.client() as client:
        done = poll_until_done(client, created["id"])
    assert done["status"] == "completed", done
    data = download(server, done["video"]["url"])
    assert probe(data).frames == 8 * 24
    expected = np.asarray(ImageOps.fit(reference, (1280, 720), Image.Resampling.BICUBIC))
    assert np.abs(first_frame(data).astype(int) - expected.astype(int)).mean() < 8


def test_first_last_video_ends_on_the_last_image(server: LiveServer):
    first, last = pattern_image(640, 360, seed=1), pattern_image(640, 360, seed=2).rotate(180)
    created = create(
        server,
        {
            "model": "google/veo-3.1-first-last-image-to-video-fast",
            "prompt": "the camera stays still",
            "image_url": data_uri(first),
            "last_image_url": data_uri(last),
            "duration": 4,
            "resolution": "720p",
            "generate_audio": False,
        },
    )
    with server.client() as client:
        done = poll_until_done(client, created["id"])
    assert done["status"] == "completed", done
    data = download(server, done["video"]["url"])
    expected_first = np.asarray(ImageOps.fit(first, (1280, 720), Image.Resampling.BICUBIC))
    expected_last = np.asarray(ImageOps.fit(last, (1280, 720), Image.Resampling.BICUBIC))
    assert np.abs(first_frame(data).astype(int) - expected_first.astype(int)).mean() < 8
    assert np.abs(last_frame(data).astype(int) - expected_last.astype(int)).mean() < 8


def test_videos_past_retention_expire_and_their_files_go(tmp_path):
    settings = make_settings(tmp_path, retention_s=1.0, heartbeat_s=0.2)
    with live_server(settings, workers=1) as live, live.client() as client:
        created = client.post(
            "/v2/video/generations",
            json={
                "model": "google/veo-3.0-i2v-fast",
                "prompt": "x",
                "duration": 4,
                "image_url": data_uri(pattern_image()),
                "generate_audio": False,
            },
        ).json()
        done = poll_until_done(client, created["id"])
        assert done["status"] == "completed"
        url = done["video"]["url"]
        assert client.get(url).status_code == 200
        deadline = time.monotonic() + 15
        while True:
            status = client.get(
                "/v2/video/generations", params={"generation_id": created["id"]}
            ).json()
            if status["status"] == "error":
                break
            assert time.monotonic() < deadline, status
            time.sleep(0.1)
        assert status["error"]["name"] == "Expired" and status["video"] is None
        assert client.get(url).status_code == 404
        job_dir = (
            live.runtime.settings.resolved_storage_dir
            / "jobs"
            / created["id"].split(":")[0].replace("-", "")
        )
        assert not job_dir.exists()


def test_rate_limits_are_per_key_and_answer_429_with_retry_after(tmp_path):
    settings = make_settings(tmp_path, rate_limit_per_minute=2)
    params = {"generation_id": str(uuid.uuid4())}
    with live_server(settings, workers=0) as live:
        other_key = live.new_key("neighbour")
        with live.client() as client, live.client(api_key=other_key) as neighbour:
            statuses = [client.get("/v2/video/generations", params=params).status_code]
            statuses.append(client.get("/v2/video/generations", params=params).status_code)
            limited = client.get("/v2/video/generations", params=params)
            # The other key has its own bucket: the first key's burst takes nothing from it.
            neighbour_statuses = [
                neighbour.get("/v2/video/generations", params=params).status_code
                for _ in range(3)
            ]
            # One bucket per key across dialects: the OpenAI routes refuse it as well.
            elsewhere = client.get("/v1/videos")
    assert statuses == [404, 404]
    assert limited.status_code == 429, limited.text
    body = limited.json()
    assert body["statusCode"] == 429 and "rate limit" in body["message"]
    assert int(limited.headers["Retry-After"]) >= 1
    assert neighbour_statuses == [404, 404, 429]
    assert elsewhere.status_code == 429
    assert elsewhere.json()["error"]["type"] == "rate_limit_exceeded"


def test_omni_and_the_veo_3_1_fast_extension_by_video_url(server: LiveServer, image_uri: str):
    omni = create(
        server,
        {
            "model": "google/gemini-omni-1.2-flash",
            "prompt": "a slow push-in",
            "image_url": image_uri,
            "duration": 3,
            "resolution": "360p",
        },
    )
    made = poll_until_done(server.client(), omni["id"])
    assert made["status"] == "completed", made
    facts = probe(download(server, made["video"]["url"]))
    assert (facts.width, facts.height, facts.duration_s) == (640, 360, 3.0)
    assert facts.audio_codec == "aac"

    extend = "google/veo3-1-fast-extend-video"
    with server.client() as client:
        missing = client.post("/v2/video/generations", json={"model": extend, "prompt": "on"})
        foreign = client.post(
            "/v2/video/generations",
            json={"model": extend, "video_url": "https://example.com/clip.mp4"},
        )
    assert missing.status_code == 400 and "video_url" in str(missing.json()["details"])
    assert foreign.status_code == 400 and "not fetched" in str(foreign.json()["details"])
    longer = create(
        server, {"model": extend, "prompt": "and on", "video_url": made["video"]["url"]}
    )
    done = poll_until_done(server.client(), longer["id"])
    assert done["status"] == "completed", done
    assert probe(download(server, done["video"]["url"])).duration_s == pytest.approx(10, abs=0.1)
    job = server.runtime.store.get_any(longer["id"].split(":")[0].replace("-", ""))
    assert job.request.source_job_id == omni["id"].split(":")[0].replace("-", "")
