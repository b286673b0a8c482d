"""The kinema under test in the upstream tests: its catalog (an upstream engine per
protocol, all pointed at the fault proxy) and one client per kinema dialect."""

from __future__ import annotations

import base64
import io
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from google import genai
from google.genai import types
from openai import OpenAI

from tests.support import LiveServer, pattern_image
from tests.upstream_support import (
    SLOW_MODEL,
    FaultProxy,
    Provider,
    forwarding_model,
    grey_engine,
    toml_text,
    upstream_engine,
)

IMAGE = pattern_image(320, 180)


def _png() -> bytes:
    buffer = io.BytesIO()
    IMAGE.save(buffer, "PNG")
    return buffer.getvalue()


PNG = _png()
DATA_URI = "data:image/png;base64," + base64.b64encode(PNG).decode()


class LogTrap(logging.Handler):
    """Keeps every log line of the process, to look for the provider key in them."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@dataclass
class Gateway:
    provider: Provider
    proxy: FaultProxy
    server: LiveServer
    trap: LogTrap
    catalog: Path


def gateway_catalog(proxy_url: str) -> str:
    engines: dict[str, Any] = {
        "up-gemini": upstream_engine("gemini", proxy_url, model="veo-3.1-fast-generate-preview"),
        "up-vertex": upstream_engine("vertex", proxy_url, model="veo-3.1-fast-generate-preview"),
        "up-aimlapi": upstream_engine("aimlapi", proxy_url, model="google/veo-3.1-i2v-fast"),
        "up-unified": upstream_engine("unified", proxy_url, model="veo-3.1-fast-image-to-video"),
        "up-v1": upstream_engine("v1", proxy_url, model="veo-3.0-fast-generate-001"),
        "up-openai": upstream_engine("openai", proxy_url, model="veo-3.0-generate-001"),
        "up-slow": upstream_engine("v1", proxy_url, model=SLOW_MODEL),
        "up-broken": upstream_engine("v1", proxy_url + "/broken", max_retries=2),
        "up-limited": upstream_engine("openai", proxy_url, model=SLOW_MODEL, max_in_flight=1),
        "up-deadline": upstream_engine("v1", proxy_url, model=SLOW_MODEL, deadline_s=1.5),
        "local": grey_engine(0.0),
    }
    models: dict[str, Any] = {}
    models |= forwarding_model(
        "veo-3.1-fast-generate-preview",
        model_id="fwd-gemini",
        dialect="aimlapi",
        engine="up-gemini",
    )
    models |= forwarding_model(
        "google/veo-3.1-i2v-fast", model_id="fwd-aimlapi", dialect="gemini", engine="up-aimlapi"
    )
    models |= forwarding_model(
        "veo-3.1-fast-image-to-video", model_id="fwd-unified", dialect="openai", engine="up-unified"
    )
    models |= forwarding_model(
        "veo-3.0-fast-generate-001", model_id="fwd-v1", dialect="unified", engine="up-v1"
    )
    models |= forwarding_model(
        "veo-3.0-generate-001", model_id="fwd-openai", dialect="v1", engine="up-openai"
    )
    models |= forwarding_model(
        "veo-3.1-fast-generate-preview", model_id="fwd-vertex", dialect="vertex", engine="up-vertex"
    )
    models |= forwarding_model(SLOW_MODEL, model_id="fwd-slow", dialect="v1", engine="up-slow")
    models |= forwarding_model(
        SLOW_MODEL, model_id="fwd-deadline", dialect="v1", engine="up-deadline"
    )
    models |= forwarding_model(
        "veo-3.0-fast-generate-001",
        model_id="fwd-fallback",
        dialect="v1",
        engine=["up-broken", "local"],
    )
    models |= forwarding_model(
        SLOW_MODEL, model_id="fwd-limited", dialect="v1", engine=["up-limited", "local"]
    )
    models |= forwarding_model(
        "veo-3.1-fast-generate-preview",
        model_id="fwd-vertex-then-local",
        dialect="vertex",
        engine=["up-vertex", "local"],
    )
    refused = forwarding_model(
        "google/veo-3.1-i2v-fast", model_id="fwd-refused", dialect="aimlapi", engine="up-aimlapi"
    )
    refused["fwd-refused"]["durations"] = [4, 6, 8, 10]
    models |= refused
    return toml_text({"engines": engines, "models": models})


def poll(call: Any, done: Any, timeout_s: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        body = call()
        if done(body):
            return body
        time.sleep(0.1)
    raise AssertionError(f"not done in {timeout_s} s: {body}")


def through_aimlapi(gw: Gateway, model: str, prompt: str) -> tuple[dict[str, Any], bytes]:
    with gw.server.client() as client:
        created = client.post(
            "/v2/video/generations",
            json={"model": model, "prompt": prompt, "image_url": DATA_URI, "duration": 4},
        )
        assert created.status_code == 200, created.text
        params = {"generation_id": created.json()["id"]}
        body = poll(
            lambda: client.get("/v2/video/generations", params=params).json(),
            lambda b: b["status"] not in ("queued", "generating"),
        )
        video = client.get(body["video"]["url"]).content if body.get("video") else b""
    return body, video


def through_gemini(gw: Gateway, model: str, prompt: str) -> tuple[dict[str, Any], bytes]:
    """Google's own SDK (google-genai 2.x), pointed at the kinema under test."""
    options = {"base_url": gw.server.url}
    with genai.Client(api_key=gw.server.api_key, http_options=options) as client:
        operation = client.models.generate_videos(
            model=model,
            source=types.GenerateVideosSource(
                prompt=prompt, image=types.Image(image_bytes=PNG, mime_type="image/png")
            ),
            config=types.GenerateVideosConfig(duration_seconds=4),
        )
        deadline = time.monotonic() + 90
        while not operation.done:
            assert time.monotonic() < deadline, "operation did not finish"
            time.sleep(0.2)
            operation = client.operations.get(operation)
        assert operation.error is None, operation.error
        assert operation.response is not None and operation.response.generated_videos
        video = client.files.download(file=operation.response.generated_videos[0])
    return {"name": operation.name, "done": operation.done}, video


def through_vertex(gw: Gateway, model: str, prompt: str) -> tuple[dict[str, Any], bytes]:
    """Vertex AI's REST wire in express mode, as google-genai 3.x sends it."""
    headers = {"x-goog-api-key": gw.server.api_key}
    image = {"bytesBase64Encoded": base64.b64encode(PNG).decode(), "mimeType": "image/png"}
    body = {
        "instances": [{"prompt": prompt, "image": image}],
        "parameters": {"sampleCount": 1, "durationSeconds": 4},
    }
    with httpx.Client(base_url=gw.server.url, headers=headers, timeout=60) as client:
        created = client.post(
            f"/v1beta1/publishers/google/models/{model}:predictLongRunning", json=body
        )
        assert created.status_code == 200, created.text
        name = created.json()["name"]
        resource = name.rpartition("/operations/")[0]
        done = poll(
            lambda: client.post(
                f"/v1beta1/{resource}:fetchPredictOperation", json={"operationName": name}
            ).json(),
            lambda b: b.get("done"),
        )
    video = base64.b64decode(done["response"]["videos"][0]["bytesBase64Encoded"])
    return done, video


def through_openai(gw: Gateway, model: str, prompt: str) -> tuple[dict[str, Any], bytes]:
    """OpenAI's SDK (``client.videos``), pointed at the kinema under test."""
    client = OpenAI(api_key=gw.server.api_key, base_url=gw.server.url + "/v1", timeout=60)
    video = client.videos.create_and_poll(
        model=model,
        prompt=prompt,
        seconds="4",
        input_reference=("first.png", PNG, "image/png"),
    )
    content = client.videos.download_content(video.id).content
    client.close()
    return video.model_dump(), content


def through_unified(gw: Gateway, model: str, prompt: str) -> tuple[dict[str, Any], bytes]:
    with gw.server.client() as client:
        created = client.post(
            "/v1/videos/generations",
            json={"model": model, "prompt": prompt, "image_url": DATA_URI, "duration": 4},
        )
        assert created.status_code == 200, created.text
        task_id = created.json()["id"]
        body = poll(
            lambda: client.get(f"/v1/tasks/{task_id}").json(),
            lambda b: b["status"] in ("completed", "failed"),
        )
        video = client.get(body["results"][0]).content if body.get("results") else b""
    return body, video


def through_v1(
    gw: Gateway, model: str, prompt: str, seconds: int = 4
) -> tuple[dict[str, Any], bytes]:
    with gw.server.client() as client:
        created = client.post(
            "/v1/video/generations",
            json={"model": model, "prompt": prompt, "images": [DATA_URI], "seconds": seconds},
        )
        assert created.status_code == 200, created.text
        task_id = created.json()["id"]
        body = poll(
            lambda: client.get(f"/v1/video/generations/{task_id}").json(),
            lambda b: b["status"] in ("succeeded", "failed", "cancelled"),
        )
        video = client.get(body["url"]).content if body.get("url") else b""
    return body, video


CLIENTS = {
    "aimlapi": through_aimlapi,
    "gemini": through_gemini,
    "openai": through_openai,
    "unified": through_unified,
    "v1": through_v1,
    "vertex": through_vertex,
}

# (kinema dialect the client speaks, model there, protocol toward the provider, create path)
ROUTES = [
    ("aimlapi", "fwd-gemini", "gemini", ":predictLongRunning"),
    ("gemini", "fwd-aimlapi", "aimlapi", "/v2/video/generations"),
    ("openai", "fwd-unified", "unified", "/v1/videos/generations"),
    ("unified", "fwd-v1", "v1", "/v1/video/generations"),
    ("v1", "fwd-openai", "openai", "/v1/videos"),
    ("vertex", "fwd-vertex", "vertex", ":predictLongRunning"),
]
