"""The five wire dialects as a client sees them: create, poll, stream, cancel, read the state.

Tests that check one behaviour in every dialect take a ``WireDialect`` from ``DIALECTS``
(parametrize over ``DIALECT_NAMES``) instead of repeating five request shapes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from tests.support import LiveServer, data_uri, pattern_image

# What every dialect's status object says about its job, in one vocabulary.
ACTIVE, COMPLETED, FAILED, CANCELLED, EXPIRED = (
    "active",
    "completed",
    "failed",
    "cancelled",
    "expired",
)
ENDED = (COMPLETED, FAILED, CANCELLED, EXPIRED)


@dataclass(frozen=True)
class WireDialect:
    name: str
    create_path: str
    body: Callable[[str | None], dict[str, Any]]  # callback URL -> create body
    wire_id: Callable[[dict[str, Any]], str]  # create response -> the id clients use
    poll_path: Callable[[str], str]
    events_path: Callable[[str], str]
    state: Callable[[dict[str, Any]], str]  # status object -> ACTIVE, COMPLETED, ...
    video_url: Callable[[dict[str, Any]], str | None]
    cancel_path: Callable[[str], str] | None  # POST here cancels; None: the dialect has none

    def create(self, client: httpx.Client, callback_url: str | None = None) -> str:
        response = client.post(self.create_path, json=self.body(callback_url))
        assert response.status_code in (200, 201), response.text
        return self.wire_id(response.json())

    def poll(self, client: httpx.Client, wire_id: str) -> dict[str, Any]:
        response = client.get(self.poll_path(wire_id))
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def wait(
        self,
        client: httpx.Client,
        wire_id: str,
        states: tuple[str, ...] = ENDED,
        timeout_s: float = 120,
    ) -> dict[str, Any]:
        """Poll until the job is in one of ``states``; its status object."""
        deadline = time.monotonic() + timeout_s
        while True:
            body = self.poll(client, wire_id)
            if self.state(body) in states:
                return body
            assert time.monotonic() < deadline, f"{self.name} {wire_id} is still {body}"
            time.sleep(0.1)

    def cancel(self, live: LiveServer, client: httpx.Client, wire_id: str) -> None:
        if self.cancel_path is not None:
            response = client.post(self.cancel_path(wire_id))
            assert response.status_code == 200, response.text
            return
        # The AI/ML API and OpenAI have no cancel that keeps the job: the runtime's cancel.
        job_id = job_id_of(live, wire_id)
        live.runtime.service.cancel(live.runtime.store.get_any(job_id).owner, job_id)


def job_id_of(live: LiveServer, wire_id: str) -> str:
    """The job id behind a wire id of any dialect (Unified ids are looked up by owner)."""
    if wire_id.startswith("task-unified-"):
        from kinema.api.dialects.unified import job_ref

        return live.runtime.service.find(owner_of(live), job_ref(wire_id)).id
    if wire_id.startswith("models/"):  # Gemini: models/<model>/operations/<id>
        return wire_id.rsplit("/", 1)[1]
    if ":" in wire_id:  # AI/ML API: <uuid>:<model>
        return wire_id.split(":", 1)[0].replace("-", "")
    return wire_id.removeprefix("video_").removeprefix("task_")


def owner_of(live: LiveServer, api_key: str | None = None) -> str:
    secret = api_key or live.api_key
    return next(k.id for k in live.runtime.keys.list() if secret.startswith(k.prefix))


def _aimlapi_state(body: dict[str, Any]) -> str:
    if body["status"] in ("queued", "generating"):
        return ACTIVE
    if body["status"] == "completed":
        return COMPLETED
    name = body["error"]["name"]
    return {"Cancelled": CANCELLED, "Expired": EXPIRED}.get(name, FAILED)


def _gemini_state(body: dict[str, Any]) -> str:
    if not body["done"]:
        return ACTIVE
    if "response" in body:
        return COMPLETED
    return {1: CANCELLED, 5: EXPIRED}.get(body["error"]["code"], FAILED)


def _gemini_video(body: dict[str, Any]) -> str | None:
    if "response" not in body:
        return None
    samples = body["response"]["generateVideoResponse"]["generatedSamples"]
    return str(samples[0]["video"]["uri"])


def _error_state(active: tuple[str, ...], done: str, cancelled: str, expired: str):  # type: ignore[no-untyped-def]
    def state(body: dict[str, Any]) -> str:
        if body["status"] in active:
            return ACTIVE
        if body["status"] == done:
            return COMPLETED
        code = (body.get("error") or {}).get("code")
        return {cancelled: CANCELLED, expired: EXPIRED}.get(code, FAILED)

    return state


def _image() -> str:
    return data_uri(pattern_image(320, 180))


def _with_callback(body: dict[str, Any], callback_url: str | None) -> dict[str, Any]:
    return body if callback_url is None else {**body, "callback_url": callback_url}


GEMINI_MODEL = "veo-3.0-fast-generate-001"

DIALECTS: dict[str, WireDialect] = {
    "aimlapi": WireDialect(
        name="aimlapi",
        create_path="/v2/video/generations",
        body=lambda callback: _with_callback(
            {
                "model": "google/veo-3.0-i2v-fast",
                "prompt": "pan left",
                "duration": 4,
                "resolution": "720p",
                "generate_audio": False,
                "image_url": _image(),
            },
            callback,
        ),
        wire_id=lambda created: str(created["id"]),
        poll_path=lambda wid: f"/v2/video/generations?generation_id={quote(wid, safe='')}",
        events_path=lambda wid: (
            f"/v2/video/generations/events?generation_id={quote(wid, safe='')}"
        ),
        state=_aimlapi_state,
        video_url=lambda body: (body.get("video") or {}).get("url"),
        cancel_path=None,
    ),
    "gemini": WireDialect(
        name="gemini",
        create_path=f"/v1beta/models/{GEMINI_MODEL}:predictLongRunning",
        body=lambda callback: {
            "instances": [{"prompt": "pan left"}],
            "parameters": {
                "durationSeconds": 4,
                "resolution": "720p",
                "generateAudio": False,
                **({"callbackUrl": callback} if callback else {}),
            },
        },
        wire_id=lambda created: str(created["name"]),
        poll_path=lambda name: f"/v1beta/{name}",
        events_path=lambda name: f"/v1beta/{name}/events",
        state=_gemini_state,
        video_url=_gemini_video,
        cancel_path=lambda name: f"/v1beta/{name}:cancel",
    ),
    "openai": WireDialect(
        name="openai",
        create_path="/v1/videos",
        body=lambda callback: _with_callback(
            {
                "model": "sora-2",
                "prompt": "pan left",
                "seconds": "4",
                "size": "1280x720",
                "generate_audio": False,
            },
            callback,
        ),
        wire_id=lambda created: str(created["id"]),
        poll_path=lambda wid: f"/v1/videos/{wid}",
        events_path=lambda wid: f"/v1/videos/{wid}/events",
        state=_error_state(("queued", "in_progress"), "completed", "cancelled", "expired"),
        video_url=lambda body: None,  # downloads go through /content with the key
        cancel_path=None,
    ),
    "unified": WireDialect(
        name="unified",
        create_path="/v1/videos/generations",
        body=lambda callback: _with_callback(
            {
                "model": "veo-3.1-fast-image-to-video",
                "prompt": "pan left",
                "duration": 4,
                "resolution": "720p",
                "image_url": _image(),
            },
            callback,
        ),
        wire_id=lambda created: str(created["id"]),
        poll_path=lambda wid: f"/v1/tasks/{wid}",
        events_path=lambda wid: f"/v1/tasks/{wid}/events",
        state=_error_state(
            ("pending", "processing"), "completed", "request_cancelled", "result_expired"
        ),
        video_url=lambda body: (body.get("results") or [None])[0],
        cancel_path=lambda wid: f"/v1/tasks/{wid}/cancel",
    ),
    "v1": WireDialect(
        name="v1",
        create_path="/v1/video/generations",
        body=lambda callback: _with_callback(
            {
                "model": GEMINI_MODEL,
                "prompt": "pan left",
                "seconds": 4,
                "size": "720p",
                "aspect_ratio": "16:9",
            },
            callback,
        ),
        wire_id=lambda created: str(created["task_id"]),
        poll_path=lambda wid: f"/v1/video/generations/{wid}",
        events_path=lambda wid: f"/v1/video/generations/{wid}/events",
        state=lambda body: (
            CANCELLED
            if body["status"] == "cancelled"
            else _error_state(("queued", "in_progress"), "succeeded", "cancelled", "expired")(
                body
            )
        ),
        video_url=lambda body: body.get("video_url"),
        cancel_path=lambda wid: f"/v1/video/generations/{wid}/cancel",
    ),
}
DIALECT_NAMES = sorted(DIALECTS)


# --- server-sent events ---


@dataclass
class Stream:
    events: list[dict[str, str]]  # field -> value, one dict per event
    comments: list[str]  # lines starting with ":" (keepalives)

    @property
    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(e["data"]) for e in self.events]


def read_stream(
    client: httpx.Client,
    path: str,
    last_event_id: str | None = None,
    *,
    stop: Callable[[Stream], bool] | None = None,
) -> Stream:
    """Read a server-sent event stream until it ends (or ``stop`` says enough)."""
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    stream = Stream([], [])
    current: dict[str, str] = {}
    with client.stream("GET", path, headers=headers) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith(":"):
                stream.comments.append(line)
            elif not line:
                if current:
                    stream.events.append(current)
                current = {}
            else:
                name, _, value = line.partition(": ")
                current[name] = value
            if stop is not None and stop(stream):
                break
    return stream


def event_rank(event: dict[str, str]) -> tuple[int, int]:
    rank, percent = event["id"].split(".")
    return int(rank), int(percent)


# --- catalogs whose every model runs one fixture engine ---


def catalog_on_engine(directory: Path, engine_class: str, **options: object) -> Path:
    """kinema's own catalog with its one engine swapped for ``tests.fixture_engines:<class>``:
    every model id of every dialect keeps its limits and runs the fixture engine."""
    text = (resources.files("kinema") / "catalog.toml").read_text()
    motion = '[engines.motion]\nkind = "motion"'
    assert motion in text, "the shipped catalog no longer has the motion engine block"
    lines = [f'class = "tests.fixture_engines:{engine_class}"']
    lines += [f"{name} = {json.dumps(value)}" for name, value in options.items()]
    swapped = text.replace(motion, '[engines.motion]\nkind = "python"\n' + "\n".join(lines))
    path = directory / f"catalog-{engine_class}.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(swapped)
    return path
