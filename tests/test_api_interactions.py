"""The Interactions API (Gemini Omni): Google's own SDKs (3.6.1, Python and JS) end to
end, then raw REST for isolation, malformed input, references, extension, webhooks,
idempotency and event streams.

The SDKs run from ``.venv-genai3`` (google-genai) and ``.node-genai3`` (@google/genai) at
the repository root, which ``scripts/test.sh`` installs (the suite installs nothing; where
they are missing these tests are skipped, or fail under ``CI=true``); the SDK scripts in
``tests/sdk/`` are unchanged clients but for base URL and key.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import numpy as np
import pytest
from PIL import Image

from kinema.api.dialects.interactions import ERROR_SCHEMA
from tests.conftest import missing_tool
from tests.support import (
    LiveServer,
    encode_image,
    first_frame,
    live_server,
    make_settings,
    pattern_image,
    probe,
)
from tests.webhook_receiver import Receiver

ROOT = Path(__file__).resolve().parents[1]
SDK_DIR = Path(__file__).parent / "sdk"
GENAI3_PYTHON = ROOT / ".venv-genai3" / "bin" / "python"
NODE_MODULES = ROOT / ".node-genai3" / "node_modules"
MODEL = "gemini-omni-1.2-flash"
FORMAT = {"type": "video", "aspect_ratio": "16:9", "resolution": "360p", "duration": "3"}
DONE = ("completed", "failed", "cancelled", "incomplete")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = make_settings(
        tmp_path_factory.mktemp("interactions"),
        fetch_allow_hosts=["127.0.0.1"],
        webhook_retry_base_s=0.2,
        webhook_poll_s=0.05,
    )
    with live_server(settings, workers=2) as live:
        yield live


@pytest.fixture(scope="module")
def png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("img") / "frame.png"
    path.write_bytes(encode_image(pattern_image(640, 360)))
    return path


def run_sdk(command: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    done = subprocess.run(command, capture_output=True, text=True, timeout=400, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def assert_playable_with_sound(path: Path, size: tuple[int, int]) -> None:
    facts = probe(path.read_bytes())
    assert (facts.width, facts.height) == size
    assert facts.frames == 3 * 24 and facts.video_codec == "h264"
    assert facts.audio_codec == "aac" and facts.audio_duration_s == pytest.approx(3.0, abs=0.1)


def assert_sdk_flow(server: LiveServer, result: dict[str, Any], out: Path, size: tuple) -> None:
    assert result["statuses"] == ["completed"] * 3
    for name in ("image", "text", "refined"):
        assert_playable_with_sound(out / f"{name}.mp4", size)
    first, _, refined = result["ids"]
    assert result["refined_from"] == first
    job = server.runtime.store.get_any(refined)
    assert job.request.source_job_id == first and job.request.source_kind == "remix"
    assert job.request.prompt == "the same scene, now at night"
    events = result["events"]
    assert events[-4:] == ["step.start", "step.delta", "step.stop", "interaction.completed"]
    assert set(events[:-4]) == {"interaction.status_update"}
    assert result["cancelled"] == "cancelled" and result["deleted"] is True


def test_python_sdk_makes_refines_streams_and_cancels(
    server: LiveServer, png: Path, tmp_path: Path
):
    if not (GENAI3_PYTHON.parent.parent / ".ready").exists():
        missing_tool("google-genai 3.6.1 is not installed in .venv-genai3: run scripts/test.sh")
    script = str(SDK_DIR / "genai3_interactions.py")
    args = [server.url, server.api_key, MODEL, str(png), str(tmp_path)]
    result = run_sdk([str(GENAI3_PYTHON), script, *args])
    assert result["sdk"] == "3.6.1"
    assert result["labels"] == {"team": "video"}
    assert_sdk_flow(server, result, tmp_path, (640, 360))
    text_job = server.runtime.store.get_any(result["ids"][1])
    assert text_job.request.seed == 7 and text_job.request.image is None


def test_js_sdk_makes_refines_streams_and_cancels(server: LiveServer, png: Path, tmp_path: Path):
    if shutil.which("node") is None:
        missing_tool("node is not installed: the @google/genai JS SDK test needs it")
    if not (NODE_MODULES.parent / ".ready").exists():
        missing_tool("@google/genai 3.6.1 is not installed in .node-genai3: run scripts/test.sh")
    script = str(SDK_DIR / "genai3_interactions.cjs")
    env = {**os.environ, "NODE_PATH": str(NODE_MODULES)}
    args = [server.url, server.api_key, MODEL, str(png), str(tmp_path)]
    result = run_sdk(["node", script, *args], env=env)
    assert_sdk_flow(server, result, tmp_path, (360, 640))  # 9:16
    image_job = server.runtime.store.get_any(result["ids"][0])
    assert image_job.request.image is not None  # the flat list's image is the first frame


# --- raw REST ---


def rest(server: LiveServer, key: str | None = None) -> httpx.Client:
    return httpx.Client(
        base_url=server.url, headers={"x-goog-api-key": key or server.api_key}, timeout=60
    )


def create(client: httpx.Client, body: dict[str, Any], **headers: str) -> httpx.Response:
    raw = json.dumps({"model": MODEL, **body})  # ASCII: a lone surrogate as \ud800
    headers = {"Content-Type": "application/json", **headers}
    return client.post("/v1/interactions", content=raw, headers=headers)


def wait(client: httpx.Client, interaction_id: str, timeout_s: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        body: dict[str, Any] = client.get(f"/v1/interactions/{interaction_id}").json()
        if body["status"] in DONE:
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.1)


def video_of(body: dict[str, Any]) -> bytes:
    (item,) = body["steps"][-1]["content"]
    assert item["type"] == "video" and item["mime_type"] == "video/mp4"
    return base64.b64decode(item["data"])


def job_count(server: LiveServer) -> int:
    owner = next(k.id for k in server.runtime.keys.list() if server.api_key.startswith(k.prefix))
    return len(server.runtime.service.jobs(owner, limit=1000, after=None, order="asc"))


def image_data(color: tuple[int, int, int]) -> dict[str, str]:
    picture = Image.new("RGB", (640, 360), color)
    data = base64.b64encode(encode_image(picture)).decode()
    return {"type": "image", "data": data, "mime_type": "image/png"}


def test_another_keys_interaction_is_a_404(server: LiveServer):
    with rest(server) as mine, rest(server, server.new_key("intruder")) as theirs:
        created = create(mine, {"input": "a quiet harbour", "response_format": FORMAT})
        assert created.status_code == 200, created.text
        interaction_id = created.json()["id"]
        for method, path in (
            ("GET", f"/v1/interactions/{interaction_id}"),
            ("GET", f"/v1beta/interactions/{interaction_id}?stream=true"),
            ("POST", f"/v1/interactions/{interaction_id}/cancel"),
            ("POST", f"/v1/interactions/{interaction_id}:cancel"),
            ("DELETE", f"/v1/interactions/{interaction_id}"),
        ):
            answer = theirs.request(method, path)
            assert answer.status_code == 404, (method, path, answer.text)
            jsonschema.validate(answer.json(), ERROR_SCHEMA)
        refine = create(
            theirs,
            {
                "input": "steal it",
                "previous_interaction_id": interaction_id,
                "response_format": FORMAT,
            },
        )
        assert refine.status_code == 404, refine.text
        assert wait(mine, interaction_id)["status"] == "completed"


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"input": "x", "response_format": {"type": "text"}}, "response_format.type"),
        (
            {"input": "x", "response_format": {**FORMAT, "duration": "20"}},
            "response_format.duration",
        ),
        (
            {"input": "x", "response_format": {**FORMAT, "resolution": "8k"}},
            "response_format.resolution",
        ),
        ({"input": "x", "response_format": {**FORMAT, "aspect_ratio": "1:1"}}, "aspect_ratio"),
        ({"input": "x", "generation_config": {"video_config": {"task": "upscale"}}}, "upscale"),
        ({"input": "x", "generation_config": {"video_config": {"task": "dance"}}}, "task"),
        (
            {"input": "x", "generation_config": {"temperature": 0.3}},
            "generation_config.temperature",
        ),
        ({"input": "x", "tools": [{"type": "google_search"}]}, "tools"),
        ({"input": [{"type": "audio", "data": "AAAA"}]}, "input[0].type"),
        ({"input": [{"type": "image", "data": "bm90IGFuIGltYWdl"}]}, "input"),
        (
            {"input": "x", "generation_config": {"video_config": {"task": "extend"}}},
            "extend needs a video",
        ),
        ({"input": "x", "previous_interaction_id": "nope"}, "previous_interaction_id"),
        (
            {"input": "x", "webhook_config": {"uris": ["http://a/1", "http://a/2"]}},
            "webhook_config.uris",
        ),
        ({"input": "x", "labels": {"a": 1}}, "labels"),
        ({"input": "x", "model": "veo-3.1-generate-001"}, "model"),
        ({"input": ["\ud800"]}, "input"),
        ({"input": "x", "labels": {"a": "\ud800"}}, "labels"),
        ({"input": "x", "webhook_config": {"user_metadata": {"\udfff": 1}}}, "user_metadata"),
    ],
)
def test_malformed_input_is_a_4xx_in_googles_envelope_and_stores_nothing(
    server: LiveServer, body: dict[str, Any], named: str
):
    before = job_count(server)
    with rest(server) as client:
        answer = create(client, body)
    assert 400 <= answer.status_code < 500, answer.text
    error = answer.json()
    jsonschema.validate(error, ERROR_SCHEMA)
    assert error["error"]["code"] == str(answer.status_code)
    assert named in error["error"]["message"], error
    assert job_count(server) == before


def test_reference_images_up_to_the_limit_and_the_first_one_filmed(server: LiveServer):
    colors = [(200, 30, 30), (30, 30, 200)] + [(90, 90, 90)] * 4
    refs = [image_data(color) for color in colors]
    task = {"video_config": {"task": "reference_to_video"}}
    with rest(server) as client:
        too_many = create(
            client, {"input": ["x", *refs, image_data((0, 0, 0))], "generation_config": task}
        )
        assert too_many.status_code == 400
        assert "1 to 6 images (the model's limit), not 7" in too_many.json()["error"]["message"]
        created = create(
            client,
            {
                "input": ["a product turntable", *refs],
                "generation_config": task,
                "response_format": FORMAT,
            },
        )
        assert created.status_code == 200, created.text
        done = wait(client, created.json()["id"])
    job = server.runtime.store.get_any(done["id"])
    assert len(job.request.reference_images) == 6 and job.request.image is None
    frame = first_frame(video_of(done)).reshape(-1, 3).mean(axis=0)
    assert frame[0] > frame[2] + 40  # the red first reference is filmed, not the blue one


def test_extension_by_previous_interaction_and_its_limits(server: LiveServer):
    with rest(server) as client:
        created = create(client, {"input": "a cliff at noon", "response_format": FORMAT})
        source = wait(client, created.json()["id"])
        extend = {"video_config": {"task": "extend"}}
        longer = create(
            client,
            {
                "input": "keep going",
                "previous_interaction_id": source["id"],
                "generation_config": extend,
                "response_format": {**FORMAT, "duration": "4s"},
            },
        )
        assert longer.status_code == 200, longer.text
        done = wait(client, longer.json()["id"])
        too_long = create(
            client,
            {
                "previous_interaction_id": source["id"],
                "generation_config": extend,
                "response_format": {**FORMAT, "duration": "11"},
            },
        )
    assert done["status"] == "completed" and done["previous_interaction_id"] == source["id"]
    assert probe(video_of(done)).duration_s == pytest.approx(7.0, abs=0.1)
    assert too_long.status_code == 400 and "3, 4, 5" in too_long.json()["error"]["message"]


def test_webhook_with_user_metadata_is_signed(server: LiveServer):
    with Receiver() as receiver, rest(server) as client:
        created = create(
            client,
            {
                "input": "a meadow",
                "response_format": {**FORMAT, "delivery": "uri"},
                "webhook_config": {"uris": [receiver.url], "user_metadata": {"order": 42}},
            },
        )
        assert created.status_code == 200, created.text
        (delivery,) = receiver.wait_for(1)
    owner = next(k for k in server.runtime.keys.list() if server.api_key.startswith(k.prefix))
    event = delivery.verified(server.runtime.keys.webhook_secret(owner.id))
    data = event["data"]
    assert data["event_type"] == "interaction.completed"
    assert data["user_metadata"] == {"order": 42}
    (video,) = data["interaction"]["steps"][-1]["content"]
    assert probe(httpx.get(video["uri"], timeout=30).content).audio_codec == "aac"


def test_idempotent_create_and_a_streamed_create(server: LiveServer):
    body = {"input": "a train passing", "response_format": FORMAT}
    with rest(server) as client:
        first = create(client, body, **{"Idempotency-Key": "omni-1"})
        again = create(client, body, **{"Idempotency-Key": "omni-1"})
        assert first.json()["id"] == again.json()["id"]
        events = []
        with client.stream(
            "POST", "/v1/interactions", json={"model": MODEL, **body, "stream": True}
        ) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            for line in stream.iter_lines():
                if line.startswith("data: "):
                    events.append(line.removeprefix("data: "))
    assert events[-1] == "[DONE]"
    parsed = [json.loads(e) for e in events[:-1]]
    assert parsed[0]["event_type"] == "interaction.created"
    assert parsed[-1]["event_type"] == "interaction.completed"
    assert parsed[-1]["interaction"]["status"] == "completed"
    delta = next(e for e in parsed if e["event_type"] == "step.delta")
    assert probe(base64.b64decode(delta["delta"]["data"])).frames == 72


def test_retired_ids_are_served_as_their_models_and_say_so(server: LiveServer):
    with rest(server) as client:
        omni = create(
            client, {"input": "x", "model": "gemini-omni-flash-preview", "response_format": FORMAT}
        )
        veo = client.post(
            "/v1beta/models/veo-3.1-fast-generate-preview:predictLongRunning",
            json={"instances": [{"prompt": "x"}], "parameters": {"durationSeconds": 4}},
        )
        lite = client.post(
            "/v1beta/models/veo-3.1-lite-generate-001:predictLongRunning",
            json={"instances": [{"prompt": "x"}], "parameters": {"resolution": "4k"}},
        )
    with server.client() as bearer:
        v1 = bearer.post(
            "/v1/video/generations",
            json={"model": "veo-3.1-fast-generate-preview", "prompt": "x", "seconds": 4},
        )
    assert v1.status_code == 200, v1.text
    assert v1.headers["x-kinema-model-alias"].startswith("veo-3.1-fast-generate-001;")
    assert "retired" in v1.headers["x-kinema-model-alias"]
    assert omni.headers["x-kinema-model-alias"].startswith("gemini-omni-1.2-flash;")
    assert veo.status_code == 200, veo.text
    assert veo.headers["x-kinema-model-alias"].startswith("veo-3.1-fast-generate-001;")
    assert lite.status_code == 400 and "720p, 1080p" in lite.json()["error"]["message"]


def test_motion_engine_films_the_first_reference_without_a_first_frame():
    from kinema.engines.motion.engine import MotionEngine
    from kinema.types import EngineRequest

    red = Image.new("RGB", (320, 180), (220, 20, 20))
    blue = Image.new("RGB", (320, 180), (20, 20, 220))
    request = EngineRequest(
        prompt="x",
        width=320,
        height=180,
        fps=8,
        num_frames=4,
        generate_audio=False,
        seed=1,
        reference_images=(red, blue),
    )
    clip = MotionEngine().run(request, lambda _p: None, lambda: False)
    frame = np.asarray(next(iter(clip.frames)), dtype=float).reshape(-1, 3).mean(axis=0)
    assert frame[0] > 150 and frame[2] < 80


def test_a_keys_quota_is_a_429_in_googles_envelope(server: LiveServer):
    key = server.new_key("quota")
    verified = server.runtime.keys.verify(key)
    assert verified is not None
    server.runtime.keys.set_quota(verified.id, max_active_jobs=0, max_video_s_per_day=None)
    with rest(server, key) as client:
        refused = create(client, {"input": "x", "response_format": FORMAT})
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert (error["code"], error["status"]) == ("429", "RESOURCE_EXHAUSTED")
    assert "max_active_jobs" in error["message"] and int(refused.headers["Retry-After"]) >= 1


# --- background: false, include_input, the alias on polls ---


def test_python_sdk_gets_a_synchronous_create_finished_and_its_input_back(
    server: LiveServer, png: Path, tmp_path: Path
):
    if not (GENAI3_PYTHON.parent.parent / ".ready").exists():
        missing_tool("google-genai 3.6.1 is not installed in .venv-genai3: run scripts/test.sh")
    script = str(SDK_DIR / "genai3_interactions_sync.py")
    args = [server.url, server.api_key, MODEL, str(png), str(tmp_path)]
    result = run_sdk([str(GENAI3_PYTHON), script, *args])
    assert result == {
        "status": "completed",
        "has_video": True,
        "input": ["text", "image"],
        "text": "a slow push-in on the scene",
        "image_round_trips": True,
        "plain_input": False,
    }
    assert_playable_with_sound(tmp_path / "sync.mp4", (640, 360))


def test_background_false_answers_the_finished_interaction(server: LiveServer):
    with rest(server) as client:
        answer = create(client, {"input": "a kite", "background": False, "response_format": FORMAT})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["status"] == "completed"
        assert probe(video_of(body)).frames == 72
        background = create(client, {"input": "a kite", "response_format": FORMAT}).json()
    assert background["status"] in ("queued", "in_progress")  # no background: at once


def test_a_synchronous_create_outlasting_its_wait_is_answered_as_it_stands(tmp_path: Path):
    settings = make_settings(tmp_path, sync_wait_s=0.5)
    with live_server(settings, workers=0) as idle, rest(idle) as client:  # nothing runs jobs
        started = time.monotonic()
        answer = create(client, {"input": "x", "background": False, "response_format": FORMAT})
        waited = time.monotonic() - started
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "queued" and 0.5 <= waited < 10
        polled = client.get(f"/v1/interactions/{answer.json()['id']}")
    assert polled.status_code == 200 and polled.json()["status"] == "queued"  # kept


def test_include_input_echoes_the_input_as_sent(server: LiveServer):
    red, blue = image_data((200, 30, 30)), image_data((30, 30, 200))
    sent = [{"type": "user_input", "content": [{"type": "text", "text": "two frames"}, red, blue]}]
    with rest(server) as client:
        created = create(client, {"input": sent, "response_format": FORMAT})
        assert created.status_code == 200, created.text
        plain = wait(client, created.json()["id"])
        path = f"/v1beta/interactions/{plain['id']}"
        echoed = client.get(path, params={"include_input": "true"})
        text = create(client, {"input": "a lone string"}).json()
        text_echo = client.get(f"/v1/interactions/{text['id']}?include_input=true").json()
    assert "input" not in plain and plain["status"] == "completed"
    assert echoed.status_code == 200 and echoed.json()["input"] == sent
    assert video_of(echoed.json()) == video_of(plain)
    assert text_echo["input"] == "a lone string"


def test_polls_of_an_interaction_made_under_a_retired_id_say_so(server: LiveServer):
    with rest(server) as client:
        body = {"input": "x", "response_format": FORMAT}
        omni = create(client, {**body, "model": "gemini-omni-flash-preview"}).json()
        current = create(client, body).json()
        polled = client.get(f"/v1/interactions/{omni['id']}")
        current_poll = client.get(f"/v1/interactions/{current['id']}")
        veo = client.post(
            "/v1beta/models/veo-3.1-fast-generate-preview:predictLongRunning",
            json={"instances": [{"prompt": "x"}], "parameters": {"durationSeconds": 4}},
        )
        operation = client.get(f"/v1beta/{veo.json()['name']}")
    assert polled.status_code == 200
    assert polled.headers["x-kinema-model-alias"].startswith("gemini-omni-1.2-flash;")
    assert "x-kinema-model-alias" not in current_poll.headers
    assert operation.status_code == 200, operation.text
    assert operation.headers["x-kinema-model-alias"].startswith("veo-3.1-fast-generate-001;")
