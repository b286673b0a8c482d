"""``/v1/video/generations`` end to end: real HTTP on loopback, MP4s checked with PyAV."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from kinema.api.dialects.v1_generations import job_id_from_wire
from kinema.types import JobStatus
from tests.support import LiveServer, data_uri, live_server, make_settings, pattern_image, probe

CREATE = "/v1/video/generations"
VEO2 = "veo-2.0-generate-001"
VEO3 = "veo-3.0-generate-001"
VEO3_FAST = "veo-3.0-fast-generate-001"
VEO31 = "veo-3.1-generate-preview"
VEO31_FAST = "veo-3.1-fast-generate-preview"
TASK_ID = re.compile(r"^task_[0-9a-f]{32}$")
RUNNING = ("queued", "in_progress")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = make_settings(tmp_path_factory.mktemp("v1"))
    with live_server(settings, workers=2) as live:
        yield live


@pytest.fixture(scope="module")
def idle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server without workers: its tasks stay queued."""
    settings = make_settings(tmp_path_factory.mktemp("v1-idle"))
    with live_server(settings, workers=0) as live:
        yield live


@pytest.fixture(scope="module")
def image_uri() -> str:
    return data_uri(pattern_image(640, 360))


def create(server: LiveServer, body: dict) -> dict:
    with server.client() as client:
        response = client.post(CREATE, json=body)
    assert response.status_code == 200, response.text
    return response.json()


def poll(client: httpx.Client, task_id: str) -> dict:
    response = client.get(f"{CREATE}/{task_id}")
    assert response.status_code == 200, response.text
    return response.json()


def poll_until_done(client: httpx.Client, task_id: str, timeout_s: float = 120) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        body = poll(client, task_id)
        if body["status"] not in RUNNING:
            return body
        time.sleep(0.1)
    raise AssertionError(f"task {task_id} did not finish in {timeout_s} s")


def wait_for_status(client: httpx.Client, task_id: str, status: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while poll(client, task_id)["status"] != status:
        assert time.monotonic() < deadline, f"task {task_id} never became {status}"
        time.sleep(0.05)


def download(client: httpx.Client, url: str) -> bytes:
    response = client.get(url)
    assert response.status_code == 200, response.text
    return response.content


def assert_error(response: httpx.Response, status: int, param: str | None = None) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert {"message", "type", "param", "code"} <= error.keys()
    assert isinstance(error["message"], str) and error["message"]
    if param is not None:
        assert error["param"] == param, error
        assert error["type"] == "invalid_request_error"
    return error


# --- generating ---


def test_pixel_size_and_seconds_make_that_exact_clip(server: LiveServer, image_uri: str):
    created = create(
        server,
        {
            "model": VEO3,
            "prompt": "Contemporary dance, the people in the picture are dancing.",
            "aspect_ratio": "16:9",
            "images": [image_uri],
            "seconds": 4,
            "size": "1280x720",
        },
    )

    assert TASK_ID.match(created["id"]) and created["task_id"] == created["id"]
    assert created["object"] == "video" and created["model"] == VEO3
    assert created["status"] in RUNNING and created["progress"] in range(101)
    assert abs(created["created_at"] - time.time()) < 60
    assert (created["seconds"], created["size"], created["off_peak"]) == ("4", "1280x720", False)
    assert created["error"] is None and "url" not in created
    with server.client() as client:
        done = poll_until_done(client, created["id"])
        assert done["status"] == "succeeded", done
        assert done["progress"] == 100 and done["completed_at"] >= done["created_at"]
        assert done["url"] == done["video_url"] and done["url"].startswith(server.url + "/files/")
        assert done["expires_at"] > time.time() + 23 * 3600
        assert done["metadata"]["width"] == 1280 and done["format"] == "mp4"
        facts = probe(download(client, done["url"]))
    assert (facts.width, facts.height, facts.frames) == (1280, 720, 4 * 24)
    assert facts.audio_codec == "aac"


def test_veo2_takes_five_seconds_as_a_string_and_is_silent(server: LiveServer, image_uri: str):
    created = create(
        server, {"model": VEO2, "prompt": "tilt up", "images": [image_uri], "seconds": "5"}
    )
    assert (created["seconds"], created["size"]) == ("5", "1280x720")
    with server.client() as client:
        done = poll_until_done(client, created["id"])
        assert done["status"] == "succeeded", done
        facts = probe(download(client, done["url"]))
    assert facts.frames == 5 * 24
    assert facts.audio_codec is None


def test_portrait_pixel_size_sets_the_aspect_ratio(server: LiveServer, image_uri: str):
    created = create(
        server,
        {
            "model": VEO3_FAST,
            "prompt": "static",
            "image": image_uri,
            "duration": 4,
            "size": "720x1280",
            "generate_audio": False,
        },
    )
    with server.client() as client:
        done = poll_until_done(client, created["id"])
        assert done["status"] == "succeeded", done
        facts = probe(download(client, done["video_url"]))
    assert (facts.width, facts.height, facts.audio_codec) == (720, 1280, None)


def test_cancel_a_running_task_ends_it_within_two_seconds(server: LiveServer, image_uri: str):
    created = create(
        server,
        {"model": VEO3, "prompt": "x", "images": [image_uri], "seconds": 8, "size": "1080p"},
    )
    with server.client() as client:
        wait_for_status(client, created["id"], "in_progress")
        response = client.post(f"{CREATE}/{created['id']}/cancel")
        asked = time.monotonic()
        assert response.status_code == 200, response.text
        done = poll_until_done(client, created["id"], timeout_s=30)
        elapsed = time.monotonic() - asked
    assert done["status"] == "cancelled"
    assert done["error"]["code"] == "cancelled"
    assert "url" not in done
    # The render stopped where it was, not at its end: what the job's own record says, on
    # a machine of any speed. The time is only a guard against a hang.
    stopped = server.runtime.store.get_any(job_id_from_wire(created["id"]))
    assert stopped.progress < 0.9, f"rendered on to {stopped.progress:.2f} after the cancel"
    assert elapsed < 10, elapsed


def test_off_peak_tasks_run_after_ordinary_ones_submitted_later(tmp_path: Path, image_uri: str):
    def body(**fields: object) -> dict:
        base = {"model": VEO3_FAST, "prompt": "x", "images": [image_uri], "seconds": 4}
        return base | {"size": "720p", "generate_audio": False} | fields

    with live_server(make_settings(tmp_path), workers=1) as live:
        busy = create(live, body())
        off_peak = create(live, body(off_peak=True))
        ordinary = create(live, body())
        assert (off_peak["off_peak"], ordinary["off_peak"]) == (True, False)
        with live.client() as client:
            wait_for_status(client, busy["id"], "in_progress")
            assert poll(client, off_peak["id"])["queue_position"] == 1
            assert poll(client, ordinary["id"])["queue_position"] == 0
            for task in (busy, ordinary, off_peak):
                assert poll_until_done(client, task["id"])["status"] == "succeeded"
        store = live.runtime.store
        started = {
            name: store.get_any(job_id_from_wire(task["id"])).started_at
            for name, task in (("ordinary", ordinary), ("off_peak", off_peak))
        }
    assert started["ordinary"] is not None and started["off_peak"] is not None
    assert started["ordinary"] < started["off_peak"]


def test_off_peak_tasks_are_cancelled_once_too_old_and_say_why(tmp_path: Path, image_uri: str):
    settings = make_settings(tmp_path, off_peak_max_age_s=1.5, heartbeat_s=0.25)
    long_run = {"model": VEO3, "prompt": "x", "images": [image_uri], "seconds": 8}
    with live_server(settings, workers=1) as live, live.client() as client:
        running = create(live, long_run | {"size": "1080p", "off_peak": True})
        wait_for_status(client, running["id"], "in_progress")
        queued = create(live, long_run | {"size": "720p", "off_peak": True})
        ordinary = create(live, long_run | {"size": "720p", "seconds": 4})

        ends = {task["id"]: poll_until_done(client, task["id"], 20) for task in (running, queued)}
        for task in (running, queued):
            end = ends[task["id"]]
            assert end["status"] == "cancelled", end
            assert end["off_peak"] is True
            assert end["error"]["code"] == "off_peak_timeout"
            assert "off-peak" in end["error"]["message"]
        assert poll_until_done(client, ordinary["id"])["status"] == "succeeded"
        statuses = {live.runtime.store.get_any(job_id_from_wire(t)).status for t in ends}
    assert statuses == {JobStatus.CANCELLED}


# --- size mapping, without rendering ---


@pytest.mark.parametrize(
    ("size", "aspect", "expected"),
    [
        ("4k", None, "3840x2160"),
        ("4K", "9:16", "2160x3840"),
        ("3840x2160", None, "3840x2160"),
        ("2160x3840", None, "2160x3840"),
        ("1920x1080", None, "1920x1080"),
        ("1080x1920", "9:16", "1080x1920"),
        ("1080p", "9:16", "1080x1920"),
        (None, None, "1280x720"),
    ],
)
def test_sizes_map_to_resolution_and_aspect_ratio(
    idle: LiveServer, image_uri: str, size: str | None, aspect: str | None, expected: str
):
    body: dict = {"model": VEO31, "prompt": "x", "images": [image_uri]}
    if size is not None:
        body["size"] = size
    if aspect is not None:
        body["aspect_ratio"] = aspect
    created = create(idle, body)
    assert (created["size"], created["seconds"], created["status"]) == (expected, "8", "queued")
    job = idle.runtime.store.get_any(job_id_from_wire(created["id"]))
    assert idle.runtime.catalog.frame_size(job.request) == tuple(map(int, expected.split("x")))


def test_queued_tasks_show_their_position_and_cancel_at_once(idle: LiveServer, image_uri: str):
    body = {"model": VEO2, "prompt": "x", "images": [image_uri], "duration": 6}
    first, second = create(idle, body), create(idle, body)
    assert first["seconds"] == "6"
    assert second["queue_position"] == first["queue_position"] + 1
    with idle.client() as client:
        cancelled = client.post(f"{CREATE}/{first['id']}/cancel").json()
        assert cancelled["status"] == "cancelled" and "queue_position" not in cancelled
        assert cancelled["error"]["code"] == "cancelled"
        assert poll(client, second["id"])["queue_position"] == first["queue_position"]


@pytest.mark.parametrize("seconds", [4, "6"])
def test_veo_3_1_with_an_image_is_fixed_to_8_seconds_and_says_so(
    idle: LiveServer, image_uri: str, seconds: int | str
):
    body = {"model": VEO31, "prompt": "x", "images": [image_uri], "seconds": seconds}
    created = create(idle, body)
    assert created["seconds"] == "8"
    [adjusted] = created["adjustments"]
    assert (adjusted["field"], adjusted["requested"], adjusted["used"]) == ("seconds", seconds, 8)
    assert "8-second" in adjusted["reason"]
    with idle.client() as client:
        assert poll(client, created["id"])["adjustments"] == [adjusted]


def test_text_only_requests_need_no_image(idle: LiveServer):
    created = create(idle, {"model": VEO31_FAST, "prompt": "a sunset", "seconds": 4})
    assert (created["seconds"], created["status"]) == ("4", "queued")


# --- validation ---


@pytest.mark.parametrize(
    ("fields", "param", "says"),
    [
        ({"size": "1024x1024"}, "size", "1280x720"),
        ({"size": "480p"}, "size", "720p, 1080p, 4k"),
        ({"size": "1280x720", "aspect_ratio": "9:16"}, "aspect_ratio", "contradicts size"),
        ({"size": "720p", "resolution": "1080p"}, "resolution", "contradicts size"),
        ({"seconds": 8, "duration": 6}, "duration", "differs from seconds"),
        ({"images": ["a", "b", "c"]}, "images", "at most a last frame"),
        ({"image": "x"}, "image", "send the first frame once"),
        ({"prompt": "x" * 5001}, "prompt", "limit is 5000"),
        ({"aspect_ratio": "4:3"}, "aspect_ratio", "16:9, 9:16"),
        ({"audio_type": "sfx"}, "audio_type", "not accepted by model"),
        ({"images": ["data:image/png;base64,bm90IGFuIGltYWdl"]}, "images[0]", "image"),
        ({"callback_url": "ftp://example.com/hook"}, "callback_url", ""),
    ],
)
def test_bad_requests_are_400s_naming_the_field(
    idle: LiveServer, image_uri: str, fields: dict, param: str, says: str
):
    body = {"model": VEO31, "prompt": "x", "images": [image_uri]} | fields
    with idle.client() as client:
        error = assert_error(client.post(CREATE, json=body), 400, param)
    assert says in error["message"], error


@pytest.mark.parametrize(
    ("model", "fields", "param"),
    [
        (VEO2, {"size": "4k"}, "size"),
        (VEO2, {"seconds": 4}, "seconds"),
        (VEO2, {"generate_audio": True}, "generate_audio"),
        (VEO3, {"size": "3840x2160", "seconds": 4}, "seconds"),
        (VEO3, {"seconds": 9}, "seconds"),
    ],
)
def test_model_limits_are_400s(idle: LiveServer, image_uri: str, model: str, fields, param):
    body = {"model": model, "prompt": "x", "images": [image_uri]} | fields
    with idle.client() as client:
        assert_error(client.post(CREATE, json=body), 400, param)


def test_unknown_model_is_a_400_listing_the_served_ones(idle: LiveServer):
    with idle.client() as client:
        error = assert_error(client.post(CREATE, json={"model": "Veoq3-turbo", "prompt": "x"}), 400)
    assert error["code"] == "unknown_model"
    assert VEO2 in error["message"]


# --- keys and ids ---


def test_missing_or_wrong_key_is_401(idle: LiveServer):
    for key in ("", "kin_wrong"):
        with idle.client(api_key=key) as client:
            error = assert_error(client.post(CREATE, json={"model": VEO2, "prompt": "x"}), 401)
            assert error["type"] == "authentication_error"
            assert_error(client.get(f"{CREATE}/task_{'0' * 32}"), 401)


def test_another_keys_task_is_404_to_poll_and_to_cancel(idle: LiveServer, image_uri: str):
    created = create(idle, {"model": VEO2, "prompt": "x", "images": [image_uri]})
    with idle.client(api_key=idle.new_key()) as other:
        error = assert_error(other.get(f"{CREATE}/{created['id']}"), 404)
        assert error["type"] == "not_found_error"
        assert_error(other.post(f"{CREATE}/{created['id']}/cancel"), 404)
    with idle.client() as client:
        assert poll(client, created["id"])["status"] == "queued"
        for task_id in ("task_nope", f"task_{'0' * 32}", "x" * 37):
            assert_error(client.get(f"{CREATE}/{task_id}"), 404)


def test_idempotency_key_returns_the_same_task(idle: LiveServer, image_uri: str):
    body = {"model": VEO2, "prompt": "again", "images": [image_uri]}
    headers = {"Idempotency-Key": "v1-retry"}
    with idle.client() as client:
        first = client.post(CREATE, json=body, headers=headers).json()
        second = client.post(CREATE, json=body, headers=headers).json()
        conflict = client.post(CREATE, json=body | {"prompt": "other"}, headers=headers)
    assert first["id"] == second["id"]
    assert_error(conflict, 422)


def test_rate_limited_requests_get_429_with_retry_after(tmp_path: Path):
    settings = make_settings(tmp_path, rate_limit_per_minute=1)
    with live_server(settings, workers=0) as live, live.client() as client:
        assert client.get(f"{CREATE}/task_{'0' * 32}").status_code == 404
        limited = client.get(f"{CREATE}/task_{'0' * 32}")
    error = assert_error(limited, 429)
    assert error["type"] == "rate_limit_error"
    assert int(limited.headers["Retry-After"]) >= 1
