"""The playground: a static page at ``/`` (and ``/playground``) that drives the public API
from a browser, with no build step and nothing fetched from elsewhere.

The page (``kinema/static/playground/``) is a client like any other: it sends the API key
the user pasted, creates jobs through the dialect each model speaks, follows them with the
``/v1/video/generations`` event stream, cancels through that dialect and lists the key's
history with ``GET /v1/videos``. The only thing served for it alone is the catalog as
JSON, which holds nothing secret (model ids and what each takes).
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, JSONResponse, Response

from kinema.api.deps import ServiceDep
from kinema.catalog import ModelSpec

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
    """Every model with the fields it takes, for the page's form."""
    catalog = service.catalog
    return JSONResponse(
        {"models": [describe(catalog.models[m]) for m in catalog.model_ids()]},
        headers={"Cache-Control": "no-cache"},
    )


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
