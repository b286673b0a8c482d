"""Loopback emulations of the open GPU video servers' ``/v1/videos`` wire, as their code
speaks it (the commits are named in ``kinema.engines.upstream.vllm_omni`` and ``.sglang``).

Both are FastAPI apps, as the real servers are, taking the create form as
``multipart/form-data`` and answering what the real routes answer:

- vLLM-Omni: the form is validated like its ``VideoGenerationRequest`` (``seconds``
  matches ``^[1-9]\\d*$``, ``size`` ``^\\d+x\\d+$``, ``num_frames``/``fps`` >= 1,
  ``extra_params`` a JSON object); a missing prompt is FastAPI's 422. Jobs go ``queued`` ->
  ``in_progress`` (with ``progress``) -> ``completed`` or ``failed`` with ``error: {code,
  message}``; ``DELETE`` answers ``{"id", "deleted": true, "object": "video.deleted"}``.
  ``POST /v1/videos/sync`` answers the MP4 bytes.
- SGLang Diffusion: a missing prompt is a 400 "prompt is required", malformed
  ``extra_params`` a 400 "extra_params is not valid JSON", an image-to-video model without
  an image a 400 naming input_reference; jobs go ``queued`` -> ``completed`` (progress 100)
  or ``failed`` with ``error: {message}``; content before completion is a 404
  "Generation is still in-progress"; ``DELETE`` forgets the job without stopping it. With
  ``cloud``, a finished job carries a ``url`` at another host (``localhost``) and its
  ``/content`` is a 400 pointing there, as when SGLang uploads results to cloud storage.

A job renders a real H.264 MP4 of ``num_frames`` frames (``seconds * fps`` when absent, as
both servers compute it) at ``size``, so a test can check what arrived. A prompt with
"fail" fails the job; one with "slow" takes ``slow_s``.
"""

from __future__ import annotations

import io
import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any

import av
import numpy as np
import uvicorn
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from PIL import Image
from pydantic import BaseModel, Field, StringConstraints, ValidationError

from tests.support import free_port


@dataclass
class VideoServer:
    flavour: str  # "vllm_omni" | "sglang"
    url: str = ""
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    forms: list[dict[str, Any]] = field(default_factory=list)  # every create form received
    images: list[Image.Image] = field(default_factory=list)  # every input_reference
    deleted: list[str] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    image_required: bool = False  # SGLang: the served model is image-to-video
    cloud: bool = False  # SGLang: results "uploaded" to storage at another host (localhost)
    slow_s: float = 5.0


class _OmniForm(BaseModel):
    """vLLM-Omni's VideoGenerationRequest, the fields a test sends."""

    prompt: str
    model: str | None = None
    seconds: Annotated[str, StringConstraints(pattern=r"^[1-9]\d*$")] | None = None
    size: Annotated[str, StringConstraints(pattern=r"^\d+x\d+$")] | None = None
    num_frames: int | None = Field(default=None, ge=1)
    fps: int | None = Field(default=None, ge=1)
    seed: int | None = None
    negative_prompt: str | None = None
    num_inference_steps: int | None = Field(default=None, ge=1, le=200)
    guidance_scale: float | None = Field(default=None, ge=0.0, le=20.0)
    flow_shift: float | None = None
    generate_sound: bool = False
    extra_params: dict[str, Any] | None = None


def _mp4(width: int, height: int, frames: int, fps: int) -> bytes:
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        for index in range(frames):
            pixels = np.full((height, width, 3), (index * 7) % 255, np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        container.mux(stream.encode())
    return buffer.getvalue()


def _size(form: dict[str, Any]) -> tuple[int, int]:
    width, _, height = str(form.get("size") or "720x1280").partition("x")
    return int(width), int(height)


def _frames(form: dict[str, Any]) -> tuple[int, int]:
    fps = int(form.get("fps") or 24)
    frames = form.get("num_frames")
    return (int(frames) if frames else int(form.get("seconds") or 4) * fps), fps


def _render(server: VideoServer, job_id: str, form: dict[str, Any]) -> None:
    job = server.jobs[job_id]
    prompt = str(form.get("prompt", ""))
    time.sleep(server.slow_s if "slow" in prompt else 0.2)
    if server.flavour == "vllm_omni":
        job.update(status="in_progress", progress=50)
        time.sleep(0.2)
    if job_id not in server.jobs:
        return
    if "fail" in prompt:
        error: dict[str, Any] = {"message": "CUDA out of memory while decoding"}
        if server.flavour == "vllm_omni":
            error["code"] = 500
        job.update(status="failed", error=error)
        return
    frames, fps = _frames(form)
    job["content"] = _mp4(*_size(form), frames, fps)
    if server.cloud:  # SGLang's cloud storage: the job's url, not /content
        job["url"] = server.url.replace("127.0.0.1", "localhost") + f"/cloud/{job_id}.mp4"
    job.update(status="completed", progress=100, completed_at=int(time.time()))


async def _read_form(server: VideoServer, request: Request) -> tuple[dict[str, Any], bytes | None]:
    server.headers.append({k.lower(): v for k, v in request.headers.items()})
    raw = await request.form()
    form: dict[str, Any] = {}
    upload = None
    for key, value in raw.multi_items():
        if hasattr(value, "read"):
            upload = await value.read()
        else:
            form[key] = value
    server.forms.append(dict(form))
    if upload is not None:
        server.images.append(Image.open(io.BytesIO(upload)).convert("RGB"))
    return form, upload


def _public(job: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in job.items() if k != "content"}


def _omni_app(server: VideoServer) -> FastAPI:
    app = FastAPI()

    def validated(form: dict[str, Any]) -> dict[str, Any]:
        values = dict(form)
        if "extra_params" in values:
            try:
                values["extra_params"] = json.loads(values["extra_params"])
            except ValueError as error:
                raise HTTPException(400, f"extra_params: {error}") from None
        try:
            return _OmniForm(**values).model_dump(exclude_none=True)
        except ValidationError as error:
            raise HTTPException(422, json.loads(error.json())) from None

    @app.post("/v1/videos")
    async def create(request: Request) -> JSONResponse:
        form, _ = await _read_form(server, request)
        checked = validated(form)
        job_id = f"video_gen_{uuid.uuid4().hex}"
        job = {
            "id": job_id,
            "object": "video",
            "model": checked.get("model") or "Wan-AI/Wan2.2-TI2V-5B-Diffusers",
            "prompt": checked["prompt"],
            "status": "queued",
            "progress": 0,
            "seconds": checked.get("seconds") or "4",
            "size": checked.get("size"),
            "created_at": int(time.time()),
            "media_type": "video/mp4",
        }
        server.jobs[job_id] = job
        threading.Thread(target=_render, args=(server, job_id, checked), daemon=True).start()
        return JSONResponse(_public(job))

    @app.post("/v1/videos/sync")
    async def create_sync(request: Request) -> Response:
        form, _ = await _read_form(server, request)
        checked = validated(form)
        frames, fps = _frames(checked)
        return Response(_mp4(*_size(checked), frames, fps), media_type="video/mp4")

    @app.get("/v1/videos/{video_id}")
    async def retrieve(video_id: str) -> JSONResponse:
        job = server.jobs.get(video_id)
        if job is None:
            raise HTTPException(404, f"Video {video_id} not found")
        return JSONResponse(_public(job))

    @app.get("/v1/videos/{video_id}/content")
    async def content(video_id: str) -> Response:
        job = server.jobs.get(video_id)
        if job is None or "content" not in job:
            raise HTTPException(404, "Video content not available")
        return Response(job["content"], media_type="video/mp4")

    @app.delete("/v1/videos/{video_id}")
    async def delete(video_id: str) -> JSONResponse:
        if server.jobs.pop(video_id, None) is None:
            raise HTTPException(404, f"Video {video_id} not found")
        server.deleted.append(video_id)
        return JSONResponse({"id": video_id, "deleted": True, "object": "video.deleted"})

    return app


def _sglang_app(server: VideoServer) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/videos")
    async def create(request: Request) -> JSONResponse:
        form, upload = await _read_form(server, request)
        if not form.get("prompt"):
            raise HTTPException(400, "prompt is required")
        if form.get("extra_params"):
            try:
                form |= json.loads(form.pop("extra_params"))  # flattened into the request
            except ValueError:
                raise HTTPException(400, "extra_params is not valid JSON") from None
        if server.image_required and upload is None and not form.get("reference_url"):
            raise HTTPException(
                400, "input_reference or reference_url is required for image-to-video generation"
            )
        frames, fps = _frames(form)
        job_id = uuid.uuid4().hex
        job = {
            "id": job_id,
            "object": "video",
            "model": form.get("model") or "Wan-AI/Wan2.2-I2V-A14B-Diffusers",
            "status": "queued",
            "progress": 0,
            "created_at": int(time.time()),
            "size": form.get("size") or "",
            "seconds": str(round(frames / fps)),
            "quality": "standard",
        }
        server.jobs[job_id] = job
        threading.Thread(target=_render, args=(server, job_id, form), daemon=True).start()
        return JSONResponse(_public(job))

    @app.get("/v1/videos/{video_id}")
    async def retrieve(video_id: str) -> JSONResponse:
        job = server.jobs.get(video_id)
        if job is None:
            raise HTTPException(404, "Video not found")
        return JSONResponse(_public(job))

    @app.get("/v1/videos/{video_id}/content")
    async def content(video_id: str) -> Response:
        job = server.jobs.get(video_id)
        if job is None:
            raise HTTPException(404, "Video not found")
        if job.get("url"):
            raise HTTPException(
                400,
                "Video has been uploaded to cloud storage. Please use the cloud URL: " + job["url"],
            )
        if job.get("status") not in ("completed", "failed"):
            raise HTTPException(404, "Generation is still in-progress")
        if "content" not in job:
            raise HTTPException(404, "Video variant None not found")
        return Response(job["content"], media_type="video/mp4")

    @app.get("/cloud/{name}")
    async def cloud(name: str) -> Response:
        job = server.jobs.get(name.removesuffix(".mp4"))
        if job is None or "content" not in job:
            raise HTTPException(404, "no such object")
        return Response(job["content"], media_type="video/mp4")

    @app.delete("/v1/videos/{video_id}")
    async def delete(video_id: str) -> JSONResponse:
        job = server.jobs.pop(video_id, None)
        if job is None:
            raise HTTPException(404, "Video not found")
        server.deleted.append(video_id)
        return JSONResponse({**_public(job), "status": "deleted"})

    return app


@contextmanager
def video_server(flavour: str, **settings: Any) -> Iterator[VideoServer]:
    """Serve one emulated GPU video server on a free loopback port."""
    server = VideoServer(flavour, **settings)
    app = _omni_app(server) if flavour == "vllm_omni" else _sglang_app(server)
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    runner = uvicorn.Server(config)
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not runner.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the emulated video server did not start")
        time.sleep(0.02)
    server.url = f"http://127.0.0.1:{port}"
    try:
        yield server
    finally:
        runner.should_exit = True
        thread.join(10)
