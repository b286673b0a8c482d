"""The Interactions API as a dialect: its identity and errors, its polls (a read, or its
events with ``stream=true``) and its routes (create, cancel, delete), each of which
translates with ``creation`` and answers with ``answers``."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from kinema.api.deps import IdempotencyKey, get_service, request_base_url
from kinema.api.dialect import (
    DETAILS_SCHEMA,
    Dialect,
    Poll,
    error_envelope_schema,
    path_param,
)
from kinema.api.dialects import google
from kinema.api.dialects.google import GoogleOwner
from kinema.api.dialects.interactions import answers
from kinema.api.dialects.interactions.bodies import CreateInteraction, Interaction
from kinema.api.dialects.interactions.creation import checked_id, plan
from kinema.errors import KinemaError
from kinema.types import Job
from kinema.views import JobRef, JobView
from kinema.wire import interactions as wire

API_VERSIONS = wire.API_VERSIONS

ERROR_SCHEMA = error_envelope_schema(
    ("code", "message", "status"),
    code="string",
    message="string",
    status="string",
    details=DETAILS_SCHEMA,
)


class Interactions(Dialect):
    name = wire.NAME
    title = "Interactions API"
    prefixes = tuple(wire.CREATE_PATH.format(version=version) for version in API_VERSIONS)
    inline_video = wire.INLINE_VIDEO
    status_words = wire.STATUS_WORDS
    error_schema = ERROR_SCHEMA

    def owner(self, request: Request) -> str:
        return google.google_owner(request)

    # --- rendering (the wire table's) ---

    render = staticmethod(wire.render)

    def render_poll(self, request: Request, view: JobView) -> dict[str, Any]:
        return answers.with_input(request, self.render(view), view)

    def error_body(self, request: Request, error: KinemaError) -> dict[str, Any]:
        body = google.error_body(error)
        body["error"]["code"] = str(body["error"]["code"])
        return body

    # --- routes ---

    def polls(self) -> list[Poll]:
        def locate(request: Request, params: Mapping[str, str], body: Any) -> JobRef:
            return JobRef(id=checked_id(params["interaction_id"], "id"))

        return [
            Poll(
                f"/{version}/interactions/{{interaction_id}}",
                locate,
                events=f"/{version}/interactions/{{interaction_id}}/events",
                summary="The interaction; with stream=true, its events until it ends",
                parameters=(
                    path_param("interaction_id"),
                    _query_param("stream", "boolean"),
                    _query_param("last_event_id", "string"),
                    _query_param("include_input", "boolean"),
                ),
                response_model=Interaction,
                stream=answers.events,
            )
            for version in API_VERSIONS
        ]

    def add_routes(self, router: APIRouter) -> None:
        for version in API_VERSIONS:
            self._add_version(router, version)

    def _add_version(self, router: APIRouter, version: str) -> None:

        @router.post(f"/{version}/interactions", response_model=Interaction)
        async def create_interaction(
            request: Request,
            owner: GoogleOwner,
            body: CreateInteraction,
            idempotency_key: IdempotencyKey = None,
        ) -> Response:
            """Create an interaction: a video from text, images or an earlier video;
            with ``background: false``, answered once it has ended."""
            job = await run_in_threadpool(self._start, request, owner, body, idempotency_key)
            if body.background is False and not body.stream:
                job = await answers.ended(request, owner, job)
            stream = bool(body.stream)
            return await run_in_threadpool(answers.answer, self, request, owner, job, stream)

        @router.post(
            f"/{version}/interactions/{{interaction_id}}/cancel", response_model=Interaction
        )
        def cancel_interaction(
            request: Request, interaction_id: str, owner: GoogleOwner
        ) -> Response:
            """Cancel: a queued interaction ends now, a running one within moments."""
            return self._cancel(request, owner, interaction_id)

        @router.post(f"/{version}/interactions/{{interaction_action}}", response_model=Interaction)
        def cancel_interaction_colon(
            request: Request, interaction_action: str, owner: GoogleOwner
        ) -> Response:
            """``{id}:cancel``, the colon form of cancel."""
            interaction_id = google.split_action(interaction_action, "cancel", version)
            return self._cancel(request, owner, interaction_id)

        @router.delete(f"/{version}/interactions/{{interaction_id}}")
        def delete_interaction(
            request: Request, interaction_id: str, owner: GoogleOwner
        ) -> dict[str, Any]:
            """Delete the interaction and its video (an unfinished one is cancelled first)."""
            service = get_service(request)
            job_id = checked_id(interaction_id, "id")
            service.find(owner, JobRef(id=job_id))
            service.delete(owner, job_id, wait=True)
            return {}

    def _start(
        self,
        request: Request,
        owner: str,
        body: CreateInteraction,
        idempotency_key: str | None,
    ) -> Job:
        """The job ``body`` asks for: a new video, or one made from an earlier one."""
        service = get_service(request)
        planned = plan(service, body, idempotency_key)
        if planned.derived is None:
            return self.create(request, owner, planned.creation)
        source, kind = planned.derived
        creation = dataclasses.replace(planned.creation, base_url=request_base_url(request))
        return service.remix(owner, self.name, source, creation, kind=kind)

    def _cancel(self, request: Request, owner: str, interaction_id: str) -> Response:
        service = get_service(request)
        job_id = checked_id(interaction_id, "id")
        service.find(owner, JobRef(id=job_id))
        job = service.cancel(owner, job_id)
        return self.respond(request, job)


def _query_param(name: str, kind: Literal["boolean", "string"]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": {"type": kind}}
