"""The one shape of a wire API: what differs between dialects, and nothing else.

A ``Dialect`` translates. It names its jobs (``wire_id`` / ``job_ref``), maps kinema's
status enum to its own words, parses a create body into a ``Creation`` (the canonical
request), renders a ``JobView`` and a ``KinemaError`` in its own shapes, declares its
error schema, and lists its routes: ``polls`` (served by the one fast poll helper, each
with a server-sent events twin) and ``add_routes`` for the rest (create, cancel, ...).

``kinema.api.mount`` builds every dialect's routes and its OpenAPI entries from a list of
dialects; what its status object looks like (and its paths, words and field names) is
its wire table's, in ``kinema.wire``, which webhook bodies are rendered from too. A new
dialect is a wire table, one module here and one list entry.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import unquote_plus

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from kinema.api.deps import bearer_token, get_authenticator, get_service, request_base_url
from kinema.api.errors import Envelope, error_headers
from kinema.catalog import Catalog
from kinema.errors import FieldProblem, InvalidRequest, KinemaError
from kinema.inline_json import has_inline, stream_body
from kinema.types import Job, JobStatus
from kinema.views import Creation, JobRef, JobView

# (request, path parameters, parsed JSON body or None) -> the job the poll names
Locate = Callable[[Request, Mapping[str, str], Any], JobRef]
# (request, the job as first read, a fresh read) -> the poll answered as an event stream
StreamPoll = Callable[[Request, JobView, Callable[[], JobView]], Response]


@dataclass(frozen=True)
class Poll:
    """One status read of a dialect, served on the event loop by ``kinema.api.poll``.

    ``path`` is a route path (``/v1/tasks/{task_id}``; ``{name:path}`` spans slashes).
    ``events`` is the path of its server-sent events twin, or None for none.
    ``parameters`` and ``request_body`` document it in OpenAPI; ``response_model`` is
    the pydantic model its body conforms to (checked by the tests). ``stream``, when set,
    answers the poll itself as server-sent events while its query says ``stream=true``
    (the Interactions API's ``GET .../{id}?stream=true``).
    """

    path: str
    locate: Locate
    method: str = "GET"
    events: str | None = None
    summary: str = ""
    parameters: tuple[dict[str, Any], ...] = ()
    request_body: dict[str, Any] | None = None
    response_model: type[Any] | None = None
    headers: Callable[[JobView], dict[str, str]] = field(default=lambda _view: {})
    stream: StreamPoll | None = None


class Dialect:
    """Base of every wire API. Subclasses set the class attributes and override methods."""

    name: ClassVar[str]  # stored with each job; the catalog lists models per dialect
    title: ClassVar[str]  # its OpenAPI tag
    # Paths whose errors it renders, also those raised before a route is found (404, 405,
    # 413, a bad Host): a path is under a prefix when equal to it or followed by "/".
    prefixes: ClassVar[tuple[str, ...]]
    status_words: ClassVar[Mapping[JobStatus, str]]
    error_schema: ClassVar[dict[str, Any]]
    full_view: ClassVar[bool] = True  # False: render needs only the poll's short read
    inline_video: ClassVar[bool] = False  # True: render puts the MP4 itself in the body

    # --- identity ---

    def owner(self, request: Request) -> str:
        """The caller's owner id (a FastAPI dependency too): a bearer key by default."""
        return get_authenticator(request).owner(bearer_token(request))

    # --- translation ---

    def render(self, view: JobView) -> dict[str, Any]:
        """The API's status object (its wire table's ``render``, in ``kinema.wire``)."""
        raise NotImplementedError

    def render_poll(self, request: Request, view: JobView) -> dict[str, Any]:
        """A poll's status object: ``render``'s, unless the poll's query asks for more
        (the Interactions API's ``include_input``)."""
        return self.render(view)

    def error_body(self, request: Request, error: KinemaError) -> dict[str, Any]:
        raise NotImplementedError

    def render_error(self, request: Request, error: KinemaError) -> Response:
        return JSONResponse(
            self.error_body(request, error),
            status_code=error.status,
            headers=error_headers(error),
        )

    def envelope(self) -> Envelope:
        return Envelope(self.name, self.title, self.prefixes, self.error_schema, self.render_error)

    def create(self, request: Request, owner: str, creation: Creation) -> Job:
        """Accept ``creation`` for ``owner``; the job's links start with the base URL this
        request came in on (checked by ``RequestGuard``), never another request's."""
        service = get_service(request)
        creation = dataclasses.replace(creation, base_url=request_base_url(request))
        return service.create(owner, self.name, creation)

    def respond(
        self,
        request: Request,
        job: Job,
        *,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """``job`` rendered for the caller (create, cancel and other non-poll routes); a
        job of a retired model id says which model serves it (``X-Kinema-Model-Alias``)."""
        service = get_service(request)
        headers = {**alias_headers(service.catalog, job.model), **(headers or {})}
        view = service.view(job, inline_video=self.inline_video)
        body = self.render(view)
        if self.inline_video and has_inline(body):  # the video itself, streamed
            return StreamingResponse(
                stream_body(body, service.storage),
                status_code=status_code,
                headers=headers,
                media_type="application/json",
            )
        return JSONResponse(body, status_code=status_code, headers=headers)

    # --- routes ---

    def polls(self) -> list[Poll]:
        return []

    def add_routes(self, router: APIRouter) -> None:
        """Add create, cancel, delete, ... (every route but the polls)."""

    def openapi(self, schema: dict[str, Any]) -> None:
        """Complete the OpenAPI document where FastAPI cannot (rarely needed)."""


ALIAS_HEADER = "X-Kinema-Model-Alias"


def alias_headers(catalog: Catalog, model: str) -> dict[str, str]:
    """``X-Kinema-Model-Alias`` for a model id the catalog serves as an alias (a retired
    preview id), saying which model serves it; no header for any other id."""
    spec = catalog.models.get(model)
    if spec is None or spec.alias_of is None:
        return {}
    return {ALIAS_HEADER: f"{spec.alias_of}; {spec.alias_note}"}


def field_name(path: tuple[str | int, ...]) -> str:
    """``("instances", 0, "image")`` -> ``instances[0].image``."""
    name = ""
    for part in path:
        if isinstance(part, int):
            name += f"[{part}]"
        else:
            name += f".{part}" if name else part
    return name


def query_value(request: Request, name: str) -> str | None:
    """The first value of query parameter ``name``; what ``request.query_params`` gives,
    without parsing the whole query into a multi-dict (polls call this every time)."""
    wanted = name.encode() + b"="
    for part in request.scope.get("query_string", b"").split(b"&"):
        if part.startswith(wanted):
            return unquote_plus(part[len(wanted) :].decode("latin-1"))
    return None


# --- what several dialects' declarations share ---

DETAILS_SCHEMA: dict[str, Any] = {"type": "array", "items": {"type": "object"}}


def error_envelope_schema(
    required: Sequence[str], **properties: str | list[str] | dict[str, Any]
) -> dict[str, Any]:
    """The OpenAPI schema of an ``{"error": {...}}`` body; each property is a JSON type
    name, a list of them (``["string", "null"]``) or a whole schema (``DETAILS_SCHEMA``)."""
    return {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": list(required),
                "properties": {
                    name: kind if isinstance(kind, dict) else {"type": kind}
                    for name, kind in properties.items()
                },
            }
        },
    }


def path_param(name: str) -> dict[str, Any]:
    """The OpenAPI entry of a required string path parameter."""
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def dotted(problem: FieldProblem) -> str:
    """``("image_urls", 0)`` -> ``image_urls.0``."""
    return ".".join(map(str, problem.path))


def param_details(error: KinemaError) -> dict[str, Any]:
    """What an OpenAI-style envelope adds for a 400 with field problems: ``param`` (the
    first bad field) and ``details`` (one entry a problem); nothing for other errors."""
    if not isinstance(error, InvalidRequest) or not error.problems:
        return {}
    return {
        "param": dotted(error.problems[0]),
        "details": [{"param": dotted(p), "message": p.message} for p in error.problems],
    }


def id_poll(
    path: str,
    param: str,
    job_of: Callable[[str], JobRef],
    *,
    summary: str,
    response_model: type[Any],
    headers: Callable[[JobView], dict[str, str]] | None = None,
) -> Poll:
    """A ``GET`` poll whose one path parameter ``param`` names the job (``job_of`` maps it
    to a reference), with its server-sent events twin at ``path + "/events"``."""

    def locate(request: Request, params: Mapping[str, str], body: Any) -> JobRef:
        return job_of(params[param])

    poll = Poll(
        path,
        locate,
        events=path + "/events",
        summary=summary,
        parameters=(path_param(param),),
        response_model=response_model,
    )
    return poll if headers is None else dataclasses.replace(poll, headers=headers)
