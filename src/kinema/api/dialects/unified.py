"""The unified task dialect: ``task-unified-...`` ids, as API gateways document and sell Veo.

Paths (the seed names none; these are the ones such gateways serve):

- ``POST /v1/videos/generations``: create a task.
- ``GET /v1/tasks/{task_id}``: poll it.
- ``POST /v1/tasks/{task_id}/cancel``: cancel it (kinema extension; ``task_info.can_cancel``
  says whether it still can be).

Create and poll share one task object::

    {"created": <unix>, "id": "task-unified-<unix>-<8 chars>", "model",
     "object": "video.generation.task", "progress": 0..100,
     "status": "pending" | "processing" | "completed" | "failed",
     "task_info": {"can_cancel", "video_duration", "queue_position"?}, "type": "video",
     "results": [<signed video URL>]   (only when completed; valid 24 hours),
     "error": {"code", "message"}      (only when failed)}

A cancelled task is ``failed`` with error code ``request_cancelled`` (the status enum has
no fourth end state); a task whose files were removed after retention is ``failed`` with
``result_expired``. ``task_info.queue_position`` (kinema extension) counts the tasks ahead
of a pending one; under scale-out dispatch ``task_info.workers_online`` gives the job slots
of live workers serving its model (0: none, it waits until a worker for it starts).

Ids: the 8 characters are the first 40 bits of the job's id in lowercase base32, and the
unix time is the job's creation second, so an id maps back to its job through a primary
key range read and nothing is stored besides the job.

HTTP errors: ``{"error": {"code": <HTTP status>, "message", "type", "param"}}`` with types
``invalid_request_error`` (400, 422), ``authentication_error`` (401), ``permission_error``
(403), ``not_found_error`` (404), ``rate_limit_error`` (429, with ``Retry-After``) and
``internal_server_error`` / ``service_unavailable_error``; 400s add ``details`` (one entry
per problem, kinema extension).

Request fields: model, prompt, image_url (http(s) URL, raw base64 or ``data:`` URI; also
``image_urls`` with one entry), aspect_ratio, duration, resolution, generate_audio (default
false), ``auto_fix_prompt`` (alias ``auto_fix``), ``safety_level`` (alias ``safety``),
enhance_prompt, person_generation, negative_prompt, seed, and the kinema extensions
``callback_url`` and ``extend_from`` (the id of a completed task of the same key, which
the new task continues by ``duration`` seconds: one video, the source then the new
seconds, at the source's size; another key's task is a 404). Which of them a model takes
is the catalog's business. ``results`` lists every video a task made.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from kinema.api.deps import BearerOwner, IdempotencyKey, get_service
from kinema.api.dialect import (
    DETAILS_SCHEMA,
    Dialect,
    Poll,
    error_envelope_schema,
    id_poll,
    param_details,
)
from kinema.errors import InvalidRequest, KinemaError
from kinema.types import output_ref
from kinema.views import Creation
from kinema.wire import unified as wire

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    410: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    501: "invalid_request_error",
    503: "service_unavailable_error",
}


class CreateTask(BaseModel):
    """A create request; which optional fields apply depends on ``model`` (see the catalog)."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(examples=["veo-3.1-fast-image-to-video"])
    prompt: str | None = None
    image_url: str | None = Field(None, description="http(s) URL, raw base64 or data: URI")
    image_urls: list[str] | None = Field(None, description="alternative: one first frame")
    aspect_ratio: str | None = Field(None, examples=["16:9", "9:16"])
    duration: int | str | None = Field(None, examples=[4, 6, 8])
    resolution: str | None = Field(None, examples=["720p", "1080p", "4k"])
    generate_audio: bool | str | None = Field(None, description="default false")
    auto_fix_prompt: bool | str | None = None
    auto_fix: bool | str | None = Field(None, description="alias of auto_fix_prompt")
    safety_level: StrictInt | str | None = Field(None, description="1 (strictest) .. 6")
    safety: StrictInt | str | None = Field(None, description="alias of safety_level")
    enhance_prompt: bool | str | None = None
    person_generation: str | None = Field(None, examples=["dont_allow", "allow_adult"])
    negative_prompt: str | None = None
    seed: StrictInt | str | None = None
    callback_url: str | None = Field(
        None, description="kinema extension: receives a signed webhook when the task ends"
    )
    extend_from: str | None = Field(
        None,
        description="kinema extension: the id of a completed task of this key to continue "
        "by `duration` seconds (the result holds both, as one video)",
    )


class TaskError(BaseModel):
    code: str
    message: str


class Task(BaseModel):
    created: int
    id: str = Field(examples=["task-unified-1757165031-uyujaw3d"])
    model: str
    object: str = "video.generation.task"
    progress: int = Field(ge=0, le=100)
    status: str = Field(examples=["pending", "processing", "completed", "failed"])
    task_info: dict[str, Any]
    type: str = "video"
    results: list[str] | None = Field(None, description="signed video URLs, valid 24 hours")
    error: TaskError | None = None


job_ref = wire.job_ref


TaskId = Annotated[str, Path(examples=["task-unified-1757165031-uyujaw3d"])]


class UnifiedTasks(Dialect):
    name = wire.NAME
    title = "Unified tasks"
    prefixes = ("/v1/tasks", "/v1/videos/generations")
    inline_video = wire.INLINE_VIDEO
    status_words = wire.STATUS_WORDS
    error_schema = error_envelope_schema(
        ("code", "message", "type"),
        code="integer",
        message="string",
        type="string",
        param=["string", "null"],
        details=DETAILS_SCHEMA,
    )

    # --- rendering (the wire table's) ---

    render = staticmethod(wire.render)

    def error_body(self, request: Request, error: KinemaError) -> dict[str, Any]:
        body: dict[str, Any] = {
            "code": error.status,
            "message": error.message,
            "type": _ERROR_TYPES.get(error.status, "internal_server_error"),
            "param": None,
        }
        return {"error": body | param_details(error)}

    # --- translating a create ---

    @staticmethod
    def parse_create(body: CreateTask, idempotency_key: str | None) -> Creation:
        sent = body.model_dump(
            exclude_unset=True, exclude={"model", "callback_url", "extend_from"}
        )
        fields: dict[str, Any] = {}
        wire_names = dict(wire.FIELDS)
        for sent_as, value in sent.items():
            canonical = wire.WIRE_FIELDS.get(sent_as, sent_as)
            if canonical in fields:
                taken = wire_names[canonical]
                raise InvalidRequest.for_field(sent_as, f"is the same field as {taken}; send one")
            if sent_as == "image_urls":
                if not isinstance(value, list) or len(value) != 1:
                    raise InvalidRequest.for_field(
                        sent_as, "takes exactly one image (the first frame)"
                    )
                value = value[0]
            fields[canonical] = value
            wire_names[canonical] = sent_as
        return Creation(
            model=body.model,
            fields=fields,
            wire_names=wire_names,
            callback_url=body.callback_url,
            idempotency_key=idempotency_key,
        )

    # --- routes ---

    def polls(self) -> list[Poll]:
        return [
            id_poll(
                wire.TASK_PATH,
                "task_id",
                job_ref,
                summary="The task's status; once completed, results holds the signed video URL",
                response_model=Task,
            )
        ]

    def add_routes(self, router: APIRouter) -> None:

        @router.post(wire.CREATE_PATH, response_model=Task)
        def create_task(
            request: Request,
            body: CreateTask,
            owner: BearerOwner,
            idempotency_key: IdempotencyKey = None,
        ) -> Response:
            """Create an image-to-video task; poll it at ``GET /v1/tasks/{id}``."""
            service = get_service(request)
            creation = self.parse_create(body, idempotency_key)
            if body.extend_from is not None:  # ids carry only a job's head: look it up
                source = service.find(owner, job_ref(body.extend_from))
                creation = dataclasses.replace(
                    creation,
                    fields={**creation.fields, "video": output_ref(source.id)},
                    wire_names={**creation.wire_names, "video": "extend_from"},
                )
            job = self.create(request, owner, creation)
            return self.respond(request, job)

        @router.post(wire.CANCEL_PATH, response_model=Task)
        def cancel_task(request: Request, task_id: TaskId, owner: BearerOwner) -> Response:
            """Cancel a task: a pending one ends now, a processing one within moments.

            The task ends ``failed`` with error code ``request_cancelled``; cancelling a
            finished task changes nothing and returns it as it is.
            """
            service = get_service(request)
            job = service.cancel(owner, service.find(owner, job_ref(task_id)).id)
            return self.respond(request, job)
