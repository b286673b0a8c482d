"""A Python client for kinema's AI/ML API dialect (works with any server of that API).

    with KinemaClient("http://127.0.0.1:8000", api_key) as client:
        path = client.generate("photo.jpg", "The camera pushes in", output="out.mp4")

``AsyncKinemaClient`` offers the same calls with ``await``. Polling backs off from
``poll_initial_s`` to ``poll_max_s``; ``on_update`` sees every status response.
"""

from __future__ import annotations

import asyncio
import base64
import mimetypes
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

import httpx

from kinema.wire import aimlapi as wire

DEFAULT_MODEL = "google/veo-3.1-i2v-fast"
IN_PROGRESS = wire.IN_PROGRESS
CREATE_PATH = wire.GENERATIONS_PATH

Update = Callable[[dict[str, Any]], None]


class KinemaAPIError(Exception):
    """The server answered with an HTTP error; ``body`` is its decoded error envelope."""

    def __init__(self, status_code: int, body: Any) -> None:
        message = body.get("message") if isinstance(body, dict) else str(body)
        details = body.get("details") if isinstance(body, dict) else None
        if details:
            message = f"{message} " + "; ".join(
                f"{'.'.join(map(str, d.get('path', [])))}: {d.get('message')}" for d in details
            )
        super().__init__(f"HTTP {status_code}: {message}")
        self.status_code = status_code
        self.body = body


class GenerationFailed(Exception):
    """The generation ended in ``error``; ``generation`` is the last status response."""

    def __init__(self, generation: dict[str, Any]) -> None:
        error = generation.get("error") or {}
        super().__init__(f"{error.get('name', 'error')}: {error.get('message', 'failed')}")
        self.generation = generation


class GenerationTimeout(Exception):
    pass


def image_field(image: str | Path | bytes) -> str:
    """An ``image_url`` value: URLs pass through, files and bytes become data URIs."""
    if isinstance(image, str) and image.startswith(("http://", "https://", "data:")):
        return image
    if isinstance(image, bytes):
        return "data:image/png;base64," + base64.b64encode(image).decode()
    path = Path(image)
    mime = mimetypes.guess_type(path.name)[0] or "image/png"
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode()


def _create_body(
    model: str, prompt: str, image: str | Path | bytes | None, fields: dict[str, Any]
) -> dict[str, Any]:
    body: dict[str, Any] = {wire.MODEL: model, wire.FIELDS["prompt"]: prompt}
    if image is not None:
        body[wire.FIELDS["image"]] = image_field(image)
    body.update({k: v for k, v in fields.items() if v is not None})
    return body


def _decode(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = response.text
    if response.status_code >= 400:
        raise KinemaAPIError(response.status_code, body)
    if not isinstance(body, dict):
        raise KinemaAPIError(response.status_code, f"unexpected response: {body!r}")
    return body


def _finished(generation: dict[str, Any]) -> bool:
    if generation.get("status") in IN_PROGRESS:
        return False
    if generation.get("status") != wire.COMPLETED:
        raise GenerationFailed(generation)
    return True


class _Backoff:
    def __init__(self, initial_s: float, max_s: float, timeout_s: float | None) -> None:
        self.delay = initial_s
        self.max_s = max_s
        self.deadline = None if timeout_s is None else time.monotonic() + timeout_s

    def next_delay(self) -> float:
        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise GenerationTimeout("the generation did not finish in time")
        delay, self.delay = self.delay, min(self.delay * 1.5, self.max_s)
        return delay


class KinemaClient:
    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout_s: float = 60.0,
        poll_initial_s: float = 0.5,
        poll_max_s: float = 5.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(
            base_url=base_url, headers=headers, timeout=timeout_s, transport=transport
        )
        self.poll_initial_s = poll_initial_s
        self.poll_max_s = poll_max_s

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def create(
        self,
        prompt: str,
        image: str | Path | bytes | None = None,
        *,
        model: str = DEFAULT_MODEL,
        idempotency_key: str | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        body = _create_body(model, prompt, image, fields)
        return _decode(self._http.post(CREATE_PATH, json=body, headers=headers))

    def get(self, generation_id: str) -> dict[str, Any]:
        return _decode(self._http.get(CREATE_PATH, params={wire.ID_PARAMETER: generation_id}))

    def wait(
        self, generation_id: str, *, timeout_s: float | None = None, on_update: Update | None = None
    ) -> dict[str, Any]:
        """Poll until the generation completes; raise ``GenerationFailed`` if it errors."""
        backoff = _Backoff(self.poll_initial_s, self.poll_max_s, timeout_s)
        while True:
            generation = self.get(generation_id)
            if on_update:
                on_update(generation)
            if _finished(generation):
                return generation
            time.sleep(backoff.next_delay())

    def download(self, url: str, output: str | Path) -> Path:
        output = Path(output)
        with self._http.stream("GET", url) as response:
            if response.status_code >= 400:
                response.read()
                _decode(response)
            with output.open("wb") as sink:
                for chunk in response.iter_bytes():
                    sink.write(chunk)
        return output

    def generate(
        self,
        image: str | Path | bytes | None,
        prompt: str,
        *,
        output: str | Path,
        model: str = DEFAULT_MODEL,
        timeout_s: float | None = None,
        on_update: Update | None = None,
        **fields: Any,
    ) -> Path:
        """Create, wait and download in one call; returns the path of the MP4."""
        created = self.create(prompt, image, model=model, **fields)
        if on_update:
            on_update(created)
        done = self.wait(created["id"], timeout_s=timeout_s, on_update=on_update)
        return self.download(done["video"]["url"], output)


class AsyncKinemaClient:
    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout_s: float = 60.0,
        poll_initial_s: float = 0.5,
        poll_max_s: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.AsyncClient(
            base_url=base_url, headers=headers, timeout=timeout_s, transport=transport
        )
        self.poll_initial_s = poll_initial_s
        self.poll_max_s = poll_max_s

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def create(
        self,
        prompt: str,
        image: str | Path | bytes | None = None,
        *,
        model: str = DEFAULT_MODEL,
        idempotency_key: str | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        body = _create_body(model, prompt, image, fields)
        return _decode(await self._http.post(CREATE_PATH, json=body, headers=headers))

    async def get(self, generation_id: str) -> dict[str, Any]:
        response = await self._http.get(CREATE_PATH, params={wire.ID_PARAMETER: generation_id})
        return _decode(response)

    async def wait(
        self, generation_id: str, *, timeout_s: float | None = None, on_update: Update | None = None
    ) -> dict[str, Any]:
        backoff = _Backoff(self.poll_initial_s, self.poll_max_s, timeout_s)
        while True:
            generation = await self.get(generation_id)
            if on_update:
                on_update(generation)
            if _finished(generation):
                return generation
            await asyncio.sleep(backoff.next_delay())

    async def download(self, url: str, output: str | Path) -> Path:
        output = Path(output)
        async with self._http.stream("GET", url) as response:
            if response.status_code >= 400:
                await response.aread()
                _decode(response)
            with output.open("wb") as sink:
                async for chunk in response.aiter_bytes():
                    sink.write(chunk)
        return output

    async def generate(
        self,
        image: str | Path | bytes | None,
        prompt: str,
        *,
        output: str | Path,
        model: str = DEFAULT_MODEL,
        timeout_s: float | None = None,
        on_update: Update | None = None,
        **fields: Any,
    ) -> Path:
        created = await self.create(prompt, image, model=model, **fields)
        if on_update:
            on_update(created)
        done = await self.wait(created["id"], timeout_s=timeout_s, on_update=on_update)
        return await self.download(done["video"]["url"], output)
