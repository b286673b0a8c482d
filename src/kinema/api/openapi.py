"""The OpenAPI document: FastAPI's, completed with what its routing cannot express.

- The hot poll endpoints are plain Starlette routes; their operations are added here.
- Every dialect renders errors in its own envelope, so each operation's ``default``
  response documents that envelope, and FastAPI's generic 422 (which kinema never
  sends: dialects answer validation errors with 400) is removed.
- Server-sent event streams are documented as ``text/event-stream``.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from kinema.api import aimlapi, files, gemini, openai_videos, unified, v1_generations

# OpenAPI tag of each dialect's routes -> that dialect's error envelope
ERROR_SCHEMAS: dict[str, dict[str, Any]] = {
    "AI/ML API": aimlapi.ERROR_SCHEMA,
    "Gemini API": gemini.ERROR_SCHEMA,
    "OpenAI Videos": openai_videos.ERROR_SCHEMA,
    "Unified tasks": unified.ERROR_SCHEMA,
    "/v1/video/generations": v1_generations.ERROR_SCHEMA,
    "files": files.ERROR_SCHEMA,
}
_EVENT_STREAM = {
    "description": "Server-sent events: `progress` on every change, then one `done`; each "
    "event's `data` is the API's own status object as JSON",
    "content": {
        "text/event-stream": {
            "schema": {
                "type": "object",
                "required": ["id", "event", "data"],
                "properties": {
                    "id": {"type": "string", "pattern": "^[0-9]+\\.[0-9]+$"},
                    "event": {"type": "string", "enum": ["progress", "done"]},
                    "data": {"type": "string"},
                },
            }
        }
    },
}


def build_openapi(app: FastAPI) -> dict[str, Any]:
    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    for path in aimlapi.POLL_PATHS:
        schema["paths"].setdefault(path, {})["get"] = aimlapi.POLL_OPERATION
    components = schema.setdefault("components", {})
    components.setdefault("securitySchemes", {})["bearer"] = {"type": "http", "scheme": "bearer"}
    for path, operations in schema["paths"].items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            if "HTTPValidationError" in str(responses.get("422", "")):
                del responses["422"]
            if path.endswith("/events"):
                responses["200"] = _EVENT_STREAM
            tag = (operation.get("tags") or [None])[0]
            if tag in ERROR_SCHEMAS:
                responses["default"] = {
                    "description": "An error, in this API's own error envelope",
                    "content": {"application/json": {"schema": ERROR_SCHEMAS[tag]}},
                }
    for unused in ("HTTPValidationError", "ValidationError"):
        components.get("schemas", {}).pop(unused, None)
    return schema
