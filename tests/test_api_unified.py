"""The unified task dialect end to end: real HTTP on loopback, real MP4s checked with PyAV."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from kinema.api.dialects.unified import job_ref
from tests.support import LiveServer, data_uri, live_server, make_settings, pattern_image, probe

CREATE = "/v1/videos/generations"
STANDARD = "veo-3.1-image-to-video"
FAST = "veo-3.1-fast-image-to-video"
LITE = "veo-3.1-lite-image-to-video"
TASK_ID = re.compile(r"^task-unified-(\d+)-[a-z2-7]{8}$")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = make_settings(tmp_path_factory.mktemp("unified"))
    with live_server(settings, workers=2) as live:
        yield live


@pytest.fixture(scope="module")
def idle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server without workers: its tasks stay pending."""
    settings = make_settings(tmp_path_factory.mktemp("unified-idle"))
    with live_server(settings, workers=0) as live:
        yield live


@pytest.fixture(scope="module")
def image_uri() -> str:
    return data_uri(pattern_image(640, 360))


def small(model: str, image: str, **fields: object) -> dict:
    return {
        "model": model,
        "prompt": "The flowers sway gently in the wind",
        "image_url": image,
        "duration": 4,
        "resolution": "720p",
    } | fields


def create(server: LiveServer, body: dict) -> dict:
    with server.client() as client:
        response = client.post(CREATE, json=body)
    assert response.status_code == 200, response.text
    return response.json()


def poll_until_done(client: httpx.Client, task_id: str, timeout_s: float = 120) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        response = client.get(f"/v1/tasks/{task_id}")
        assert response.status_code == 200, response.text
        body = response.json()
        if body["status"] not in ("pending", "processing"):
            return body
        time.sleep(0.1)
    raise AssertionError(f"task {task_id} did not finish in {timeout_s} s")


def download(client: httpx.Client, url: str) -> bytes:
    response = client.get(url)
    assert response.status_code == 200, response.text
    return response.content


def assert_error(response: httpx.Response, status: int, param: str | None = None) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == status
    assert isinstance(error["message"], str) and error["message"]
    if param is not None:
        assert error["param"] == param, error
        assert error["type"] == "invalid_request_error"
    return error


# --- generating ---


@pytest.mark.parametrize("model", [STANDARD, FAST, LITE])
def test_each_model_makes_a_silent_720p_clip_by_default(
    server: LiveServer, image_uri: str, model: str
):
    created = create(server, small(model, image_uri))

    match = TASK_ID.match(created["id"])
    assert match is not None, created["id"]
    assert int(match[1]) == created["created"]
    assert abs(created["created"] - time.time()) < 60
    assert created["object"] == "video.generation.task" and created["type"] == "video"
    assert created["model"] == model
    assert created["status"] in ("pending", "processing")
    assert created["task_info"]["can_cancel"] is True
    assert created["task_info"]["video_duration"] == 4
    with server.client() as client:
        done = poll_until_done(client, created["id"])
        assert done["status"] == "completed", done
        assert done["progress"] == 100 and done["id"] == created["id"]
        assert done["task_info"]["can_cancel"] is False
        [url] = done["results"]
        assert url.startswith(server.url + "/files/")
        facts = probe(download(client, url))
    assert (facts.width, facts.height, facts.frames) == (1280, 720, 4 * 24)
    assert facts.audio_codec is None


def test_generate_audio_true_adds_a_sound_track(server: LiveServer, image_uri: str):
    created = create(server, small(FAST, image_uri, generate_audio=True, aspect_ratio="9:16"))
    with server.client() as client:
        done = poll_until_done(client, created["id"])
        assert done["status"] == "completed", done
        facts = probe(download(client, done["results"][0]))
    assert (facts.width, facts.height) == (720, 1280)
    assert facts.audio_codec == "aac"


def test_a_line_no_voice_can_speak_is_said_in_the_task_not_dropped(
    server: LiveServer, image_uri: str
):
    prompt = "The monk turns and says: 'ሰላም ነው።' Then he says: 'Peace be with you.'"
    spoken = small(FAST, image_uri, generate_audio=True, prompt="She says: 'Good morning.'")
    created = [create(server, small(FAST, image_uri, generate_audio=True, prompt=prompt))]
    created.append(create(server, spoken))
    with server.client() as client:
        unspoken, fine = (poll_until_done(client, task["id"]) for task in created)
    assert unspoken["status"] == "completed", unspoken
    (note,) = unspoken["task_info"]["notes"]
    assert "ሰላም ነው።" in note and "not spoken" in note
    assert fine["status"] == "completed" and "notes" not in fine["task_info"]


def test_standard_takes_its_own_options(server: LiveServer, image_uri: str):
    body = small(
        STANDARD,
        image_uri,
        person_generation="allow_adult",
        enhance_prompt=True,
        safety_level=3,
        auto_fix_prompt=True,
        negative_prompt="blurry, watermark",
        seed=42,
    )
    created = create(server, body)
    job = server.runtime.service.find(_owner(server), job_ref(created["id"]))
    assert job.request.person_generation == "allow_adult"
    assert (job.request.enhance_prompt, job.request.auto_fix) == (True, True)
    assert (job.request.safety_level, job.request.seed) == (3, 42)
    with server.client() as client:
        assert client.post(f"/v1/tasks/{created['id']}/cancel").status_code == 200


def _owner(server: LiveServer) -> str:
    return next(key.id for key in server.runtime.keys.list() if key.name == "test")


def test_cancel_a_processing_task_ends_it_within_two_seconds(server: LiveServer, image_uri: str):
    created = create(server, small(FAST, image_uri, duration=8, resolution="1080p"))
    with server.client() as client:
        deadline = time.monotonic() + 30
        while client.get(f"/v1/tasks/{created['id']}").json()["status"] != "processing":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        response = client.post(f"/v1/tasks/{created['id']}/cancel")
        asked = time.monotonic()
        assert response.status_code == 200, response.text
        assert response.json()["task_info"]["can_cancel"] is False
        done = poll_until_done(client, created["id"], timeout_s=5)
        assert time.monotonic() - asked < 2
    assert done["status"] == "failed"
    assert done["error"]["code"] == "request_cancelled"
    assert "results" not in done


# --- pending tasks ---


def test_pending_tasks_show_their_queue_position_and_cancel_at_once(
    idle: LiveServer, image_uri: str
):
    first = create(idle, small(LITE, image_uri))
    second = create(idle, small(LITE, image_uri))
    assert first["status"] == second["status"] == "pending"
    with idle.client() as client:
        polled = client.get(f"/v1/tasks/{second['id']}").json()
        assert polled["task_info"]["queue_position"] == first["task_info"]["queue_position"] + 1

        cancelled = client.post(f"/v1/tasks/{first['id']}/cancel").json()
        assert cancelled["status"] == "failed"
        assert cancelled["error"]["code"] == "request_cancelled"
        assert "queue_position" not in cancelled["task_info"]
        again = client.post(f"/v1/tasks/{first['id']}/cancel").json()
        assert again == cancelled | {"task_info": again["task_info"]}
        after = client.get(f"/v1/tasks/{second['id']}").json()
        assert after["task_info"]["queue_position"] == polled["task_info"]["queue_position"] - 1


def test_image_urls_with_one_image_is_the_first_frame(idle: LiveServer, image_uri: str):
    body = small(FAST, image_uri)
    body["image_urls"] = [body.pop("image_url")]
    created = create(idle, body)
    with idle.client() as client:
        assert client.get(f"/v1/tasks/{created['id']}").json()["status"] == "pending"
        two = small(FAST, image_uri) | {"image_urls": [image_uri, image_uri]}
        two.pop("image_url")
        assert_error(client.post(CREATE, json=two), 400, "image_urls")


def test_auto_fix_is_accepted_under_either_name_but_not_both(idle: LiveServer, image_uri: str):
    create(idle, small(LITE, image_uri, auto_fix=True))
    create(idle, small(LITE, image_uri, auto_fix_prompt=False))
    with idle.client() as client:
        both = small(LITE, image_uri, auto_fix=True, auto_fix_prompt=True)
        error = assert_error(client.post(CREATE, json=both), 400, "auto_fix")
        assert "auto_fix_prompt" in error["message"]


# --- validation ---


@pytest.mark.parametrize(
    ("model", "fields", "param", "says"),
    [
        (LITE, {"resolution": "4k"}, "resolution", "'4k' is not one of 720p, 1080p"),
        (LITE, {"resolution": "1080p", "duration": 4}, "duration", "at 1080p: 8 seconds"),
        (FAST, {"enhance_prompt": True}, "enhance_prompt", "not accepted by model"),
        (FAST, {"person_generation": "allow_adult"}, "person_generation", "not accepted"),
        (LITE, {"safety_level": 2}, "safety_level", "not accepted by model"),
        (STANDARD, {"safety_level": 7}, "safety_level", "7 is outside 1 .. 6"),
        (FAST, {"safety": 0}, "safety", "0 is outside 1 .. 6"),
        (STANDARD, {"person_generation": "everyone"}, "person_generation", "dont_allow"),
        (
            STANDARD,
            {"person_generation": "allow_all"},
            "person_generation",
            "must be one of dont_allow, allow_adult",
        ),
        (FAST, {"duration": 5}, "duration", "4, 6, 8"),
        (FAST, {"aspect_ratio": "1:1"}, "aspect_ratio", "16:9, 9:16"),
        (FAST, {"image_url": None}, "image_url", "is required"),
        (FAST, {"prompt": "x" * 5001}, "prompt", "limit is 5000"),
        (FAST, {"tail_image_url": "x"}, "tail_image_url", "not accepted"),
    ],
)
def test_requests_a_model_cannot_serve_are_400s_naming_the_field(
    idle: LiveServer, image_uri: str, model: str, fields: dict, param: str, says: str
):
    body = {k: v for k, v in (small(model, image_uri) | fields).items() if v is not None}
    with idle.client() as client:
        error = assert_error(client.post(CREATE, json=body), 400, param)
    assert says in error["message"], error
    assert any(d["param"] == param for d in error["details"])


def test_lite_1080p_at_8_seconds_is_fine(idle: LiveServer, image_uri: str):
    created = create(idle, small(LITE, image_uri, resolution="1080p", duration=8))
    assert created["task_info"]["video_duration"] == 8


def test_unknown_model_and_bad_json_are_400s(idle: LiveServer):
    with idle.client() as client:
        error = assert_error(client.post(CREATE, json={"model": "veo-9", "prompt": "x"}), 400)
        assert LITE in error["message"]
        assert_error(client.post(CREATE, json={"model": "google/veo-3.1-i2v", "prompt": "x"}), 400)
        broken = client.post(CREATE, content=b"{", headers={"content-type": "application/json"})
        assert_error(broken, 400)


def test_a_bad_image_is_a_400_on_image_url(idle: LiveServer):
    with idle.client() as client:
        response = client.post(CREATE, json=small(FAST, "data:image/png;base64,bm90IGFuIGltYWdl"))
    assert_error(response, 400, "image_url")


# --- keys, ids, limits ---


def test_missing_or_wrong_key_is_401(idle: LiveServer, image_uri: str):
    for key in ("", "kin_wrong"):
        with idle.client(api_key=key) as client:
            error = assert_error(client.post(CREATE, json=small(FAST, image_uri)), 401)
            assert error["type"] == "authentication_error"
            assert_error(client.get("/v1/tasks/task-unified-1-aaaaaaaa"), 401)


def test_another_keys_task_is_404_to_poll_and_to_cancel(idle: LiveServer, image_uri: str):
    created = create(idle, small(FAST, image_uri))
    with idle.client(api_key=idle.new_key()) as other:
        error = assert_error(other.get(f"/v1/tasks/{created['id']}"), 404)
        assert error["type"] == "not_found_error"
        assert_error(other.post(f"/v1/tasks/{created['id']}/cancel"), 404)
    with idle.client() as client:
        assert client.get(f"/v1/tasks/{created['id']}").json()["status"] == "pending"


def test_ids_that_name_no_task_are_404(idle: LiveServer, image_uri: str):
    created = create(idle, small(FAST, image_uri))
    stamp, chars = created["id"].removeprefix("task-unified-").split("-")
    wrong_time = f"task-unified-{int(stamp) + 1}-{chars}"
    wrong_chars = f"task-unified-{stamp}-{'a' if chars[0] != 'a' else 'b'}{chars[1:]}"
    with idle.client() as client:
        for task_id in (wrong_time, wrong_chars, "task-unified-x-abcdefgh", "nope", "a" * 40):
            assert_error(client.get(f"/v1/tasks/{task_id}"), 404)


def test_rate_limited_requests_get_429_with_retry_after(tmp_path: Path):
    settings = make_settings(tmp_path, rate_limit_per_minute=2)
    with live_server(settings, workers=0) as live, live.client() as client:
        codes = [client.get("/v1/tasks/task-unified-1-aaaaaaaa").status_code for _ in range(2)]
        limited = client.get("/v1/tasks/task-unified-1-aaaaaaaa")
    assert codes == [404, 404]
    error = assert_error(limited, 429)
    assert error["type"] == "rate_limit_error"
    assert int(limited.headers["Retry-After"]) >= 1
