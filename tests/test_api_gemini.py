"""The Gemini API dialect: Google's own SDK end to end, then the raw REST wire."""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Iterator

import httpx
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from kinema.api.dialects.gemini import Gemini
from kinema.types import JobStatus, VideoResult
from kinema.views import JobView
from tests.support import LiveServer, encode_image, live_server, make_settings, pattern_image, probe
from tests.webhook_receiver import Receiver

FAST = "veo-3.1-fast-generate-preview"
OPERATION_NAME = re.compile(r"models/(?P<model>[^/]+)/operations/(?P<id>[a-z0-9]+)")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = make_settings(tmp_path_factory.mktemp("gemini"), fetch_allow_hosts=["127.0.0.1"])
    with live_server(settings, workers=2) as live:
        yield live


@pytest.fixture(scope="module")
def png() -> bytes:
    return encode_image(pattern_image(640, 360))


@pytest.fixture
def sdk(server: LiveServer) -> Iterator[genai.Client]:
    with genai.Client(api_key=server.api_key, http_options={"base_url": server.url}) as client:
        yield client


@pytest.fixture(scope="module")
def finished(server: LiveServer, png: bytes) -> dict:
    """One image-to-video operation (4 s, 720p), run to the end."""
    name = start(server, {"instances": [instance(png)], "parameters": SHORT})
    with rest(server) as client:
        return wait_done(client, name)


def rest(server: LiveServer, key: str | None = None) -> httpx.Client:
    key = server.api_key if key is None else key
    headers = {"x-goog-api-key": key} if key else {}
    return httpx.Client(base_url=server.url, headers=headers, timeout=60)


def instance(png: bytes, prompt: str = "a slow push-in") -> dict:
    image = {"bytesBase64Encoded": base64.b64encode(png).decode(), "mimeType": "image/png"}
    return {"prompt": prompt, "image": image}


SHORT = {"durationSeconds": 4, "resolution": "720p"}


def predict(client: httpx.Client, body: dict, model: str = FAST) -> httpx.Response:
    return client.post(f"/v1beta/models/{model}:predictLongRunning", json=body)


def start(server: LiveServer, body: dict, model: str = FAST) -> str:
    with rest(server) as client:
        response = predict(client, body, model)
    assert response.status_code == 200, response.text
    return response.json()["name"]


def wait_done(client: httpx.Client, name: str, timeout_s: float = 120) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        operation = client.get(f"/v1beta/{name}").json()
        if operation.get("done"):
            return operation
        time.sleep(0.1)
    raise AssertionError(f"operation {name} was not done in {timeout_s} s")


def assert_rpc_error(response: httpx.Response, code: int, status: str) -> dict:
    assert response.status_code == code, response.text
    error = response.json()["error"]
    assert (error["code"], error["status"]) == (code, status)
    assert error["message"]
    return error


def assert_invalid_field(response: httpx.Response, field: str) -> None:
    error = assert_rpc_error(response, 400, "INVALID_ARGUMENT")
    assert field in error["message"]
    (bad_request,) = error["details"]
    assert bad_request["@type"] == "type.googleapis.com/google.rpc.BadRequest"
    fields = [v["field"] for v in bad_request["fieldViolations"]]
    assert field in fields, fields


# --- the official SDK, unchanged but for the base URL ---


def sdk_video(client: genai.Client, operation: types.GenerateVideosOperation) -> bytes:
    deadline = time.monotonic() + 120
    while not operation.done:
        assert time.monotonic() < deadline, "operation did not finish"
        time.sleep(0.2)
        operation = client.operations.get(operation)
    assert operation.error is None, operation.error
    assert operation.response is not None and operation.response.generated_videos
    return client.files.download(file=operation.response.generated_videos[0])


def test_sdk_image_to_video_end_to_end(sdk: genai.Client, png: bytes):
    operation = sdk.models.generate_videos(
        model=FAST,
        source=types.GenerateVideosSource(
            prompt="The camera pushes in slowly.",
            image=types.Image(image_bytes=png, mime_type="image/png"),
        ),
        config=types.GenerateVideosConfig(
            duration_seconds=4, aspect_ratio="16:9", resolution="720p"
        ),
    )
    assert operation.name is not None
    match = OPERATION_NAME.fullmatch(operation.name)
    assert match is not None and match["model"] == FAST
    facts = probe(sdk_video(sdk, operation))
    assert (facts.width, facts.height, facts.frames) == (1280, 720, 96)
    assert facts.video_codec == "h264"
    assert facts.audio_codec == "aac"
    assert facts.audio_duration_s == pytest.approx(4.0, abs=0.1)


def test_sdk_text_to_video_in_portrait(sdk: genai.Client):
    operation = sdk.models.generate_videos(
        model="veo-3.0-fast-generate-001",
        source=types.GenerateVideosSource(prompt="rain on a window at night"),
        config=types.GenerateVideosConfig(
            duration_seconds=4, aspect_ratio="9:16", resolution="720p"
        ),
    )
    facts = probe(sdk_video(sdk, operation))
    assert (facts.width, facts.height, facts.frames) == (720, 1280, 96)


def test_sdk_raises_client_errors_with_the_google_status(sdk: genai.Client):
    config = types.GenerateVideosConfig(duration_seconds=3)
    source = types.GenerateVideosSource(prompt="x")
    with pytest.raises(genai_errors.ClientError) as bad:
        sdk.models.generate_videos(model=FAST, source=source, config=config)
    assert (bad.value.code, bad.value.status) == (400, "INVALID_ARGUMENT")
    assert "parameters.durationSeconds" in (bad.value.message or "")
    with pytest.raises(genai_errors.ClientError) as unknown:
        sdk.models.generate_videos(model="veo-9.0-generate", source=source)
    assert (unknown.value.code, unknown.value.status) == (404, "NOT_FOUND")


def test_sdk_webhook_config_gets_a_signed_completed_event(server: LiveServer, sdk: genai.Client):
    with Receiver() as receiver:
        operation = sdk.models.generate_videos(
            model=FAST,
            source=types.GenerateVideosSource(prompt="x"),
            config=types.GenerateVideosConfig(
                duration_seconds=4,
                webhook_config=types.WebhookConfig(uris=[receiver.url]),
            ),
        )
        assert operation.name is not None
        sdk_video(sdk, operation)
        [delivery] = receiver.wait_for(1)
    job = server.runtime.store.get_any(operation.name.rsplit("/", 1)[1])
    event = delivery.verified(server.runtime.service.webhook_secret(job.owner))
    assert event["type"] == "generation.completed"
    data = event["data"]
    assert data["name"] == operation.name and data["done"] is True
    (sample,) = data["response"]["generateVideoResponse"]["generatedSamples"]
    assert sample["video"]["uri"].endswith(f"/v1beta/files/{job.id}:download?alt=media")


def test_sdk_last_frame_and_reference_images_reach_the_job(
    server: LiveServer, sdk: genai.Client, png: bytes
):
    image = types.Image(image_bytes=png, mime_type="image/png")
    operation = sdk.models.generate_videos(
        model="veo-3.1-generate-preview",
        source=types.GenerateVideosSource(prompt="from one frame to the other", image=image),
        config=types.GenerateVideosConfig(
            duration_seconds=4,
            last_frame=image,
            reference_images=[
                types.VideoGenerationReferenceImage(image=image, reference_type="ASSET")
            ],
        ),
    )
    assert operation.name is not None
    job_id = operation.name.rsplit("/", 1)[1]
    job = server.runtime.store.get_any(job_id)
    server.runtime.service.cancel(job.owner, job_id)
    assert job.request.image and job.request.image.startswith(f"jobs/{job_id}/")
    assert job.request.last_image and job.request.last_image.startswith(f"jobs/{job_id}/")
    assert len(job.request.reference_images) == 1


def test_style_reference_images_are_refused(server: LiveServer, png: bytes):
    reference = {"image": instance(png)["image"], "referenceType": "STYLE"}
    body = {"instances": [{"prompt": "x", "referenceImages": [reference]}]}
    with rest(server) as client:
        response = predict(client, body)
    assert_invalid_field(response, "instances[0].referenceImages[0].referenceType")


# --- the raw REST wire ---


def test_query_key_creates_and_polls_an_operation(server: LiveServer, png: bytes):
    with httpx.Client(base_url=server.url, params={"key": server.api_key}) as client:
        created = predict(client, {"instances": [instance(png)], "parameters": SHORT})
        assert created.status_code == 200, created.text
        assert created.json().keys() == {"name"}
        name = created.json()["name"]
        assert OPERATION_NAME.fullmatch(name)
        polled = client.get(f"/v1beta/{name}").json()
        assert polled["name"] == name
        # A 4 s video takes far longer to render than this one round trip.
        assert polled["done"] is False
        assert polled["metadata"]["state"] in ("PENDING", "RUNNING")
        assert client.post(f"/v1beta/{name}:cancel").status_code == 200
        assert client.get(f"/v1beta/{name}").status_code == 200


def test_every_route_also_answers_under_v1(server: LiveServer, png: bytes):
    """google-genai 3.x defaults to api_version v1 in Gemini mode."""
    body = {"instances": [instance(png)], "parameters": SHORT}
    with rest(server) as client:
        created = client.post(f"/v1/models/{FAST}:predictLongRunning", json=body)
        assert created.status_code == 200, created.text
        name = created.json()["name"]
        deadline = time.monotonic() + 120
        while not (operation := client.get(f"/v1/{name}").json())["done"]:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        uri = operation["response"]["generateVideoResponse"]["generatedSamples"][0]["video"]["uri"]
        job_id = name.rpartition("/")[2]
        video = client.get(f"/v1/files/{job_id}:download", params={"alt": "media"})
        assert probe(video.content).frames == 4 * 24
        assert client.get(uri.replace("/v1beta/", "/v1/")).status_code == 200
        assert_rpc_error(client.get("/v1/models/no/such/route"), 404, "NOT_FOUND")


def test_done_operation_links_a_video_that_the_key_downloads(server: LiveServer, finished: dict):
    assert "error" not in finished, finished
    assert finished["response"]["@type"] == (
        "type.googleapis.com/google.ai.generativelanguage.v1beta.PredictLongRunningResponse"
    )
    (sample,) = finished["response"]["generateVideoResponse"]["generatedSamples"]
    job_id = finished["name"].rsplit("/", 1)[1]
    uri = sample["video"]["uri"]
    assert uri == f"{server.url}/v1beta/files/{job_id}:download?alt=media"
    with httpx.Client(params={"key": server.api_key}, timeout=60) as client:
        video = client.get(uri)
        # what the SDK requests for an http:// uri: the whole uri after "files/"
        sdk_form = client.get(f"{server.url}/v1beta/files/{uri}:download?alt=media")
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    assert probe(video.content).frames == 96
    assert sdk_form.status_code == 200 and sdk_form.content == video.content


def test_missing_and_invalid_keys_are_unauthenticated(server: LiveServer, png: bytes):
    body = {"instances": [instance(png)], "parameters": SHORT}
    with rest(server, key="") as anonymous:
        error = assert_rpc_error(predict(anonymous, body), 401, "UNAUTHENTICATED")
        assert "x-goog-api-key" in error["message"]
        assert_rpc_error(
            anonymous.get(f"/v1beta/models/{FAST}/operations/{'0' * 32}"), 401, "UNAUTHENTICATED"
        )
    with rest(server, key="kin_not-a-real-key") as wrong:
        assert_rpc_error(predict(wrong, body), 401, "UNAUTHENTICATED")


def test_another_keys_operation_and_video_are_not_found(server: LiveServer, finished: dict):
    name = finished["name"]
    uri = finished["response"]["generateVideoResponse"]["generatedSamples"][0]["video"]["uri"]
    with rest(server, key=server.new_key()) as other:
        assert_rpc_error(other.get(f"/v1beta/{name}"), 404, "NOT_FOUND")
        assert_rpc_error(other.post(f"/v1beta/{name}:cancel"), 404, "NOT_FOUND")
        assert_rpc_error(other.delete(f"/v1beta/{name}"), 404, "NOT_FOUND")
        assert_rpc_error(other.get(uri), 404, "NOT_FOUND")
        assert_rpc_error(other.get(uri.split(":download")[0]), 404, "NOT_FOUND")


@pytest.mark.parametrize(
    ("parameters", "field"),
    [
        ({"durationSeconds": 3}, "parameters.durationSeconds"),
        ({"durationSeconds": 4, "resolution": "1080p"}, "parameters.durationSeconds"),
        ({"aspectRatio": "4:3"}, "parameters.aspectRatio"),
        ({"sampleCount": 5}, "parameters.sampleCount"),  # the model makes up to 4
        ({"resolution": "8k"}, "parameters.resolution"),
        ({"personGeneration": "everyone"}, "parameters.personGeneration"),
        ({"seed": -1}, "parameters.seed"),
        ({"storageUri": "gs://bucket/"}, "parameters.storageUri"),
        ({"callbackUrl": "ftp://example.com/hook"}, "parameters.callbackUrl"),
    ],
)
def test_bad_parameters_are_invalid_argument_naming_the_field(
    server: LiveServer, png: bytes, parameters: dict, field: str
):
    with rest(server) as client:
        response = predict(client, {"instances": [instance(png)], "parameters": parameters})
    assert_invalid_field(response, field)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"instances": []}, "instances"),
        ({"instances": [{"prompt": "a"}, {"prompt": "b"}]}, "instances"),
        ({"instances": [{"prompt": ""}]}, "instances[0].prompt"),
        ({"instances": [{"prompt": "x", "image": {"gcsUri": "gs://b/i.png"}}]}, "gcsUri"),
        (
            {"instances": [{"prompt": "x", "image": {"bytesBase64Encoded": "not base64!"}}]},
            "instances[0].image",
        ),
        ({"instances": [{"prompt": "x", "video": {"uri": "x"}}]}, "instances[0].video"),
        ({"instances": [{"prompt": "x", "frames": 3}]}, "instances[0].frames"),
        ({"instances": [{"prompt": "x"}], "parameters": []}, "parameters"),
    ],
)
def test_bad_instances_are_invalid_argument_naming_the_field(
    server: LiveServer, body: dict, field: str
):
    with rest(server) as client:
        response = predict(client, body)
    error = assert_rpc_error(response, 400, "INVALID_ARGUMENT")
    violations = error["details"][0]["fieldViolations"]
    assert any(field in v["field"] for v in violations), violations


def test_veo_2_refuses_audio_a_raw_caller_asks_for(server: LiveServer):
    body = {"instances": [{"prompt": "x"}], "parameters": {"generateAudio": True}}
    with rest(server) as client:
        response = predict(client, body, model="veo-2.0-generate-001")
    assert_invalid_field(response, "parameters.generateAudio")


def test_unknown_model_or_method_is_not_found(server: LiveServer):
    with rest(server) as client:
        unknown = predict(client, {"instances": [{"prompt": "x"}]}, model="veo-9")
        error = assert_rpc_error(unknown, 404, "NOT_FOUND")
        assert "models/veo-9" in error["message"] and FAST in error["message"]
        other_method = client.post(f"/v1beta/models/{FAST}:generateContent", json={})
        assert_rpc_error(other_method, 404, "NOT_FOUND")


def test_cancel_mid_run_ends_the_operation_cancelled(server: LiveServer, png: bytes):
    parameters = {"durationSeconds": 8, "resolution": "1080p"}
    name = start(server, {"instances": [instance(png)], "parameters": parameters})
    with rest(server) as client:
        deadline = time.monotonic() + 60
        while client.get(f"/v1beta/{name}").json()["metadata"]["state"] != "RUNNING":
            assert time.monotonic() < deadline, "the operation never started"
            time.sleep(0.05)
        cancelled = client.post(f"/v1beta/{name}:cancel")
        assert (cancelled.status_code, cancelled.json()) == (200, {})
        asked = time.monotonic()
        done = wait_done(client, name, timeout_s=10)
        assert time.monotonic() - asked < 2.5
    assert done["error"]["code"] == 1
    assert "response" not in done


def test_delete_removes_a_finished_operation(server: LiveServer):
    name = start(server, {"instances": [{"prompt": "x"}], "parameters": SHORT})
    with rest(server) as client:
        assert client.post(f"/v1beta/{name}:cancel").status_code == 200
        wait_done(client, name)
        deleted = client.delete(f"/v1beta/{name}")
        assert (deleted.status_code, deleted.json()) == (200, {})
        assert_rpc_error(client.get(f"/v1beta/{name}"), 404, "NOT_FOUND")


def test_file_metadata_describes_the_video(server: LiveServer, finished: dict):
    job_id = finished["name"].rsplit("/", 1)[1]
    with rest(server) as client:
        described = client.get(f"/v1beta/files/{job_id}")
    assert described.status_code == 200, described.text
    file = described.json()
    assert file["name"] == f"files/{job_id}"
    assert file["mimeType"] == "video/mp4" and int(file["sizeBytes"]) > 0
    assert file["downloadUri"].endswith(f"/v1beta/files/{job_id}:download?alt=media")


def test_callback_url_extension_gets_a_signed_cancelled_event(server: LiveServer):
    with Receiver() as receiver:
        body = {
            "instances": [{"prompt": "x"}],
            "parameters": {
                "durationSeconds": 8,
                "resolution": "1080p",
                "callbackUrl": receiver.url,
            },
        }
        name = start(server, body)
        with rest(server) as client:
            assert client.post(f"/v1beta/{name}:cancel").status_code == 200
            wait_done(client, name)
        [delivery] = receiver.wait_for(1)
    job = server.runtime.store.get_any(name.rsplit("/", 1)[1])
    event = delivery.verified(server.runtime.service.webhook_secret(job.owner))
    assert event["type"] == "generation.cancelled"
    assert event["data"]["name"] == name and event["data"]["done"] is True
    assert event["data"]["error"]["code"] == 1  # google.rpc.Code CANCELLED


def test_rate_limited_key_gets_resource_exhausted_with_retry_after(tmp_path):
    settings = make_settings(tmp_path, rate_limit_per_minute=2)
    with live_server(settings, workers=0) as limited, rest(limited) as client:
        path = f"/v1beta/models/{FAST}/operations/{'0' * 32}"
        statuses = [client.get(path).status_code for _ in range(2)]
        assert statuses == [404, 404]
        response = client.get(path)
    assert_rpc_error(response, 429, "RESOURCE_EXHAUSTED")
    assert int(response.headers["Retry-After"]) >= 1


# --- rendering ---


def summary(status: JobStatus, error_code: str | None = None) -> JobView:
    result = None
    if status is JobStatus.SUCCEEDED:
        result = VideoResult("jobs/x/video.mp4", None, 1280, 720, 24.0, 4.0, True, 1000)
    return JobView("ab" * 16, FAST, status, 0.5, error_code, "it broke", result, "http://h", 60)


@pytest.mark.parametrize(
    ("status", "error_code", "rpc_code"),
    [
        (JobStatus.FAILED, "engine_error", 13),
        (JobStatus.FAILED, "worker_lost", 14),
        (JobStatus.CANCELLED, None, 1),
        (JobStatus.EXPIRED, None, 5),
    ],
)
def test_ended_operations_carry_a_google_rpc_code(
    status: JobStatus, error_code: str | None, rpc_code: int
):
    body = Gemini().render(summary(status, error_code))
    assert body["done"] is True
    assert body["error"]["code"] == rpc_code and body["error"]["message"]
    assert "response" not in body


def test_unfinished_operation_is_not_done_and_reports_progress():
    body = Gemini().render(summary(JobStatus.RUNNING))
    assert body == {
        "name": f"models/{FAST}/operations/{'ab' * 16}",
        "done": False,
        "metadata": {"state": "RUNNING", "progressPercent": 50},
    }


def test_resize_mode_pad_reaches_the_job_and_a_bad_one_is_invalid(server: LiveServer, png: bytes):
    name = start(server, {"instances": [instance(png)], "parameters": {"resizeMode": "PAD"}})
    job_id = name.rsplit("/", 1)[1]
    job = server.runtime.store.get_any(job_id)
    server.runtime.service.cancel(job.owner, job_id)
    assert job.request.resize_mode == "pad"

    with rest(server) as client:
        response = predict(
            client, {"instances": [instance(png)], "parameters": {"resizeMode": "STRETCH"}}
        )
    assert_invalid_field(response, "parameters.resizeMode")
