"""Every dialect's rendered job conforms to the response model its routes declare.

Renderers build plain dicts (the poll path is too hot for model validation per request),
so this checks each of them, in every job state, against the declared pydantic model,
refusing undeclared top-level fields.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel

from kinema.api.app import create_app, dialects
from kinema.api.dialect import Dialect
from kinema.types import GenerationRequest, JobStatus, VideoResult
from kinema.views import InlineFile, JobView
from tests.support import make_settings

NOW = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
RESULT = VideoResult("jobs/x/video-1.mp4", "jobs/x/thumb.jpg", 1280, 720, 24.0, 4.0, True, 9000)
REQUEST = GenerationRequest(
    model="m",
    prompt="a pan",
    duration_s=8,
    adjustments=({"field": "seconds", "requested": 4, "used": 8, "reason": "fixed"},),
)


def views() -> list[JobView]:
    made = []
    for status in JobStatus:
        succeeded = status is JobStatus.SUCCEEDED
        common: dict[str, Any] = {
            "id": "ab" * 16,
            "model": "veo-3.1-generate-preview",
            "status": status,
            "progress": 1.0 if status.terminal else 0.25,
            "error_code": "engine_error" if status is JobStatus.FAILED else None,
            "error_message": "it broke" if status is JobStatus.FAILED else None,
            "result": RESULT if succeeded else None,
            "base_url": "http://h",
            "url_ttl_s": 86400,
            "video_url": "http://h/files/jobs/x/video-1.mp4?expires=1&signature=s"
            if succeeded
            else None,
            "link_expires_at": 1 if succeeded else None,
            "inline": InlineFile("jobs/x/video-1.mp4", 3) if succeeded else None,
        }
        made.append(JobView(**common))  # the poll's short read
        made.append(
            JobView(
                **common,
                request=REQUEST,
                created_at=NOW,
                finished_at=NOW if status.terminal else None,
                frame=(1280, 720),
                queue_position=3 if status is JobStatus.QUEUED else None,
                workers_online=1 if status is JobStatus.QUEUED else None,
            )
        )
    return made


def strict(model: type[BaseModel]) -> type[BaseModel]:
    config = {**model.model_config, "extra": "forbid"}
    return type(f"Strict{model.__name__}", (model,), {"model_config": config})


def rendering_dialects() -> list[Dialect]:
    return [d for d in dialects() if d.status_words]


@pytest.mark.parametrize("dialect", rendering_dialects(), ids=lambda d: d.name)
def test_every_rendered_job_matches_the_polls_response_model(dialect: Dialect):
    polls = dialect.polls()
    assert polls, f"{dialect.name} has no poll"
    for poll in polls:
        assert poll.response_model is not None
        model = strict(poll.response_model)
        for view in views():
            if (view.request is not None) != dialect.full_view:
                continue  # this dialect's polls read the other form
            body = dialect.render(view)
            model.model_validate(body)


def test_routes_that_render_jobs_declare_the_polls_model(tmp_path):
    """Create, cancel and list routes return what the poll returns: the same model."""
    schema = create_app(make_settings(tmp_path)).openapi()
    served = {d.title: d for d in rendering_dialects()}
    checked = 0
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            dialect = served.get((operation.get("tags") or [""])[0])
            ok = operation["responses"].get("200", {}).get("content", {}).get("application/json")
            if dialect is None or ok is None or "$ref" not in ok["schema"] or method == "delete":
                continue  # not a route that renders a job (cancel answering {}, ...)
            names = {p.response_model.__name__ for p in dialect.polls() if p.response_model}
            ref = ok["schema"].get("$ref", "")
            listed = schema["components"]["schemas"].get(ref.rpartition("/")[2], {})
            items = listed.get("properties", {}).get("data", {}).get("items", {})
            declared = ref.rpartition("/")[2]
            if declared not in names:  # a list page of them
                declared = items.get("$ref", "").rpartition("/")[2]
            assert declared in names, (method, path, ok)
            checked += 1
    assert checked >= 20
