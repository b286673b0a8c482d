"""``kinema generate`` for any model id: the create goes through the API the model speaks.

The server's ``/playground/models.json`` says which APIs speak each id (the page at ``/``
reads the same list). AI/ML API ids go through ``KinemaClient``; the others are created
through the first API of ``WIRES`` that speaks them and followed through
``/v1/video/generations/task_{id}``, which reads any job of the key, whatever API made it.
The id printed at the end is the one that API's ``--extend`` takes back.
"""

from __future__ import annotations

import base64
import mimetypes
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from kinema.client import GenerationFailed, KinemaAPIError, KinemaClient

Update = Callable[[dict[str, Any]], None]
# Seconds between polls: quick at first, then every few seconds, as the vendors' guides do.
POLL_INITIAL_S = 0.5
POLL_MAX_S = 5.0
_FRAME_SIZES = {  # --resolution and --aspect-ratio as OpenAI's ``size``
    ("720p", "16:9"): "1280x720",
    ("720p", "9:16"): "720x1280",
    ("1080p", "16:9"): "1920x1080",
    ("1080p", "9:16"): "1080x1920",
}
_DONE = {"succeeded"}
_ENDED = {"failed", "cancelled", "expired"}


@dataclass(frozen=True)
class Request:
    """What ``kinema generate`` asks for, in the CLI's own terms."""

    model: str
    prompt: str
    image: str | None  # a file path, an http(s) URL, or None
    duration: int | None = None
    resolution: str | None = None
    aspect_ratio: str | None = None
    audio: bool | None = None
    seed: int | None = None
    extend: str | None = None  # the id an earlier ``kinema generate`` printed


def dialects_of(http: httpx.Client, model: str) -> Sequence[str]:
    """The APIs that speak ``model`` on this server (AI/ML API's alone on a server that
    does not list its models)."""
    response = http.get("/playground/models.json")
    if response.status_code == 404:
        return ("aimlapi",)
    if response.status_code >= 400:
        raise KinemaAPIError(response.status_code, response.text)
    listed = {m["id"]: m["dialects"] for m in response.json().get("models", [])}
    if model not in listed:
        known = ", ".join(sorted(listed))
        raise KinemaAPIError(404, f"unknown model {model!r}; this server serves: {known}")
    return tuple(listed[model])


def generate(
    base_url: str,
    api_key: str | None,
    request: Request,
    output: Path,
    on_update: Update,
) -> tuple[Path, str]:
    """Create, follow and download one video; returns the file and the generation's id."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    with httpx.Client(base_url=base_url, headers=headers, timeout=60.0) as http:
        dialects = dialects_of(http, request.model)
        if "aimlapi" in dialects:
            return _through_aimlapi(base_url, api_key, request, output, on_update)
        wire = next((WIRES[d] for d in WIRE_ORDER if d in dialects), None)
        if wire is None:
            raise KinemaAPIError(400, f"model {request.model} speaks {', '.join(dialects)} only")
        answer = _decode(http.post(wire.path(request), json=wire.body(http, request)))
        public_id, job_id = wire.ids(http, answer)
        finished = _follow(http, job_id, public_id, on_update)
        return _download(http, finished["url"], output), public_id


def _through_aimlapi(
    base_url: str, api_key: str | None, request: Request, output: Path, on_update: Update
) -> tuple[Path, str]:
    fields: dict[str, Any] = {
        "duration": request.duration,
        "resolution": request.resolution,
        "aspect_ratio": request.aspect_ratio,
        "generate_audio": request.audio,
        "seed": request.seed,
        "extend_from": request.extend,
    }
    generation_id = ""

    def seen(generation: dict[str, Any]) -> None:
        nonlocal generation_id
        generation_id = str(generation.get("id", generation_id))
        done = generation.get("status") == "completed"
        on_update({**generation, "progress": 100 if done else generation.get("progress")})

    with KinemaClient(
        base_url, api_key, poll_initial_s=POLL_INITIAL_S, poll_max_s=POLL_MAX_S
    ) as client:
        path = client.generate(
            request.image, request.prompt, output=output, model=request.model,
            on_update=seen, **fields,
        )  # fmt: skip
    return path, generation_id


def _follow(http: httpx.Client, job_id: str, public_id: str, on_update: Update) -> dict[str, Any]:
    delay = POLL_INITIAL_S
    while True:
        task = _decode(http.get(f"/v1/video/generations/task_{job_id}"))
        on_update({**task, "id": public_id})
        if task.get("status") in _DONE:
            return task
        if task.get("status") in _ENDED:
            error = task.get("error") or {}
            raise GenerationFailed({"error": {"name": error.get("code"), **error}})
        time.sleep(delay)
        delay = min(delay * 1.5, POLL_MAX_S)


def _download(http: httpx.Client, url: str, output: Path) -> Path:
    with http.stream("GET", url, follow_redirects=True) as response:
        if response.status_code >= 400:
            response.read()
            _decode(response)
        with output.open("wb") as sink:
            for chunk in response.iter_bytes():
                sink.write(chunk)
    return output


def _decode(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = response.text
    if response.status_code >= 400:
        # OpenAI's and Google's envelopes nest the error; KinemaAPIError reads the top level.
        inner = body.get("error") if isinstance(body, dict) else None
        raise KinemaAPIError(response.status_code, inner if isinstance(inner, dict) else body)
    if not isinstance(body, dict):
        raise KinemaAPIError(response.status_code, f"unexpected response: {body!r}")
    return body


# --- the APIs other than AI/ML's: path, body and the ids an answer carries ---


def _image_uri(http: httpx.Client, image: str) -> str:
    """A URL as it is, a file as a ``data:`` URI."""
    if image.startswith(("http://", "https://")):
        return image
    path = Path(image)
    mime = mimetypes.guess_type(path.name)[0] or "image/png"
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode()


def _image_bytes(http: httpx.Client, image: str) -> dict[str, str]:
    """Google's inline image: the bytes of a file, or of a URL fetched here."""
    if image.startswith(("http://", "https://")):
        response = httpx.get(image, follow_redirects=True, timeout=60.0)
        response.raise_for_status()
        data = response.content
        mime = response.headers.get("content-type", "image/png").split(";")[0]
    else:
        data = Path(image).read_bytes()
        mime = mimetypes.guess_type(image)[0] or "image/png"
    return {"bytesBase64Encoded": base64.b64encode(data).decode(), "mimeType": mime}


def _given(**fields: Any) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


def _v1_body(http: httpx.Client, r: Request) -> dict[str, Any]:
    body: dict[str, Any] = {"model": r.model, "prompt": r.prompt}
    if r.image:
        body["images"] = [_image_uri(http, r.image)]
    return body | _given(
        seconds=r.duration, size=r.resolution, aspect_ratio=r.aspect_ratio,
        generate_audio=r.audio, seed=r.seed, extend_from=r.extend,
    )  # fmt: skip


def _unified_body(http: httpx.Client, r: Request) -> dict[str, Any]:
    body: dict[str, Any] = {"model": r.model, "prompt": r.prompt}
    if r.image:
        body["image_url"] = _image_uri(http, r.image)
    return body | _given(
        duration=r.duration, resolution=r.resolution, aspect_ratio=r.aspect_ratio,
        generate_audio=r.audio, seed=r.seed, extend_from=r.extend,
    )  # fmt: skip


def _gemini_body(http: httpx.Client, r: Request) -> dict[str, Any]:
    instance: dict[str, Any] = {"prompt": r.prompt}
    if r.image:
        instance["image"] = _image_bytes(http, r.image)
    if r.extend:
        operation = _decode(http.get(f"/v1beta/{r.extend}"))
        samples = operation.get("response", {}).get("generateVideoResponse", {})
        instance["video"] = {"uri": samples["generatedSamples"][0]["video"]["uri"]}
    parameters = _given(
        durationSeconds=r.duration, resolution=r.resolution, aspectRatio=r.aspect_ratio,
        generateAudio=r.audio, seed=r.seed,
    )  # fmt: skip
    return {"instances": [instance], "parameters": parameters}


def _openai_body(http: httpx.Client, r: Request) -> dict[str, Any]:
    body: dict[str, Any] = {"model": r.model, "prompt": r.prompt}
    if r.image:
        body["input_reference"] = _image_uri(http, r.image)
    if r.resolution or r.aspect_ratio:
        key = (r.resolution or "720p", r.aspect_ratio or "16:9")
        body["size"] = _FRAME_SIZES.get(key, f"{key[0]} at {key[1]}")
    if r.extend:  # /v1/videos/extensions takes the video and the seconds to add
        return _given(prompt=r.prompt, video={"id": r.extend}, seconds=_text(r.duration))
    return body | _given(seconds=_text(r.duration), generate_audio=r.audio, seed=r.seed)


def _text(value: int | None) -> str | None:
    return None if value is None else str(value)


def _unified_ids(http: httpx.Client, answer: dict[str, Any]) -> tuple[str, str]:
    """A unified task id holds the job id's first 40 bits (base32); the key's video list
    has the whole id."""
    public_id = str(answer["id"])
    bits = 0
    for char in public_id.rsplit("-", 1)[-1]:
        bits = (bits << 5) | "abcdefghijklmnopqrstuvwxyz234567".index(char)
    head = f"video_{bits:010x}"
    page = _decode(http.get("/v1/videos", params={"limit": 100}))
    for video in page.get("data", []):
        if str(video.get("id", "")).startswith(head):
            return public_id, str(video["id"]).removeprefix("video_")
    raise KinemaAPIError(404, f"the job of task {public_id} is not in this key's videos")


@dataclass(frozen=True)
class Wire:
    path: Callable[[Request], str]
    body: Callable[[httpx.Client, Request], dict[str, Any]]
    ids: Callable[[httpx.Client, dict[str, Any]], tuple[str, str]]  # (printed id, job id)


WIRES: dict[str, Wire] = {
    "v1": Wire(
        path=lambda r: "/v1/video/generations",
        body=_v1_body,
        ids=lambda http, a: (str(a["id"]), str(a["id"]).removeprefix("task_")),
    ),
    "gemini": Wire(
        path=lambda r: f"/v1beta/models/{r.model}:predictLongRunning",
        body=_gemini_body,
        ids=lambda http, a: (str(a["name"]), str(a["name"]).rpartition("/operations/")[2]),
    ),
    "unified": Wire(
        path=lambda r: "/v1/videos/generations", body=_unified_body, ids=_unified_ids
    ),
    "openai": Wire(
        path=lambda r: "/v1/videos/extensions" if r.extend else "/v1/videos",
        body=_openai_body,
        ids=lambda http, a: (str(a["id"]), str(a["id"]).removeprefix("video_")),
    ),
}
WIRE_ORDER = ("v1", "gemini", "unified", "openai")
