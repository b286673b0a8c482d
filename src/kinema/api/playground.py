"""The playground: a static page at ``/`` (and ``/playground``) that drives the public API
from a browser, with no build step and nothing fetched from elsewhere.

The page (``kinema/static/playground/``) is a client like any other: it sends the API key
the user pasted, creates jobs through the dialect each model speaks, follows them with the
``/v1/video/generations`` event stream, cancels through that dialect and lists the key's
history with ``GET /v1/videos``. The only thing served for it alone is the catalog as
JSON, which holds nothing secret (model ids and what each takes), the page's favicon, and
where a thumbnail's subject is (``/playground/focus/{job}``), so a history tile cut from
a portrait video shows the face rather than the middle of the frame.
"""

from __future__ import annotations

import io
from importlib import resources
from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, Response
from PIL import Image

from kinema.api.deps import BearerOwner, ServiceDep
from kinema.catalog import Catalog
from kinema.catalog_models import ModelSpec
from kinema.client import DEFAULT_MODEL

router = APIRouter(tags=["playground"], include_in_schema=False)

_ASSETS = {
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
# The page runs only its own script and styles. Images and videos may come from elsewhere:
# a pasted image URL's preview, and videos in object storage (signed links redirect there).
# Its forms are handled by the script and never submitted by the browser (the key field
# would otherwise travel in a URL), hence ``form-action 'none'``.
_CSP = (
    "default-src 'self'; img-src 'self' blob: data: http: https:; "
    "media-src 'self' blob: http: https:; "
    "connect-src 'self'; style-src 'self'; script-src 'self'; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'; form-action 'none'"
)


def _read(name: str) -> bytes:
    return resources.files("kinema").joinpath("static", "playground", name).read_bytes()


@router.get("/", response_class=HTMLResponse)
@router.get("/playground", response_class=HTMLResponse)
def page() -> Response:
    return Response(
        _read("index.html"),
        media_type="text/html; charset=utf-8",
        headers={"Content-Security-Policy": _CSP, "Cache-Control": "no-cache"},
    )


@router.get("/playground/models.json")
def models(service: ServiceDep) -> JSONResponse:
    """Every model with the fields it takes, for the page's form; the recommended one
    first."""
    catalog = service.catalog
    first = recommended_model(catalog)
    ordered = [first, *(m for m in catalog.model_ids() if m != first)]
    return JSONResponse(
        {"recommended": first, "models": [describe(catalog.models[m]) for m in ordered]},
        headers={"Cache-Control": "no-cache"},
    )


def recommended_model(catalog: Catalog) -> str:
    """The model to start from: the one ``kinema generate`` uses when it is served (an
    image-to-video model with sound that extends), else the first that takes an image."""
    if DEFAULT_MODEL in catalog.models:
        return DEFAULT_MODEL
    ids = catalog.model_ids()
    return next((m for m in ids if catalog.models[m].inputs == "image"), ids[0])


@router.get("/favicon.ico")
def favicon() -> Response:
    return Response(
        _read("favicon.ico"),
        media_type="image/x-icon",
        headers={"Cache-Control": "public, max-age=86400"},
    )


@router.get("/playground/focus/{job_id}")
async def focus(job_id: str, owner: BearerOwner, service: ServiceDep) -> JSONResponse:
    """Where the subject of ``job_id``'s first thumbnail is, as fractions of its width and
    height: the centre of the largest face, else a third of the way down a portrait frame
    (where a subject's head usually is), else the middle."""
    job = await run_in_threadpool(service.store.get, owner, job_id)
    result = job.result
    if result is None or result.thumbnail_key is None:
        return JSONResponse({"message": f"job {job_id} has no thumbnail"}, status_code=404)
    data = await run_in_threadpool(service.storage.get_bytes, result.thumbnail_key)
    point = await run_in_threadpool(subject_point, data)
    return JSONResponse(point, headers={"Cache-Control": "private, max-age=86400"})


def subject_point(data: bytes) -> dict[str, Any]:
    from kinema.engines.motion.faces import find_faces

    picture = Image.open(io.BytesIO(data)).convert("RGB")
    width, height = picture.size
    faces = find_faces(picture)
    if faces:
        left, top, box_w, box_h = faces[0].box
        x, y = (left + box_w / 2) / width, (top + box_h / 2) / height
        return {"x": round(x, 4), "y": round(y, 4), "face": True}
    return {"x": 0.5, "y": 1 / 3 if height > width else 0.5, "face": False}


@router.get("/playground/{asset}")
def asset(asset: str) -> Response:
    media_type = _ASSETS.get(asset)
    if media_type is None:
        return JSONResponse({"message": f"no playground file {asset!r}"}, status_code=404)
    return Response(_read(asset), media_type=media_type, headers={"Cache-Control": "no-cache"})


def describe(spec: ModelSpec) -> dict[str, Any]:
    accepted = spec.accepted_fields()
    return {
        "id": spec.id,
        "description": spec.description,
        "dialects": list(spec.dialects),
        "inputs": spec.inputs,
        "image_required": spec.image_required,
        "fields": sorted(accepted),
        "durations": list(spec.durations),
        "default_duration": spec.default_duration,
        "durations_at": {k: list(v) for k, v in spec.durations_at.items()},
        "aspect_ratios": list(spec.aspect_ratios),
        "resolutions": list(spec.resolutions),
        "default_resolution": spec.default_resolution,
        "sizes": list(spec.sizes),
        "audio": spec.audio,
        "default_audio": spec.default_audio,
    }
