"""What the API layer reads of a job: a ``JobView``, and how a wire id names one (``JobRef``).

A dialect renders a ``JobView`` and nothing else: links are already signed and absolute,
the frame size is already worked out, and the queue position is already counted, so a
renderer is a pure function from the view to the dialect's JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kinema.fingerprint import fingerprint
from kinema.types import GenerationRequest, JobStatus, SourceKind, VideoResult


@dataclass(frozen=True)
class JobRef:
    """A job as a wire id names it.

    Most ids carry the whole job id. Some carry only its head plus the creation second
    (the unified dialect's ``task-unified-<unix>-<8 chars>``); ``model`` is set when the
    wire name also names the model (a Google operation name), which must then match.
    """

    id: str | None = None
    id_prefix: str | None = None
    created_s: int | None = None
    model: str | None = None


# Not frozen: built on every poll, and a frozen dataclass sets each field through
# ``object.__setattr__`` (five times the cost of a plain one). Treated as read-only.
@dataclass
class OutputView:
    """One video of a succeeded job, with its links worked out (``JobView.outputs``)."""

    index: int
    result: VideoResult
    video_url: str  # signed, absolute
    thumbnail_url: str | None = None
    inline: InlineFile | None = None  # the MP4, for dialects that answer it inline
    video_object_uri: str | None = None  # s3:// URI of its copy, when the caller asked


class InlineFile:
    """A stored file that a rendered body carries base64-encoded (Vertex AI's inline
    videos). Rendering places this marker; the writer of the body (``inline_json``)
    streams the file's bytes in its place, so a poll never holds the video in memory nor
    reads storage on the event loop. (A plain class: JSON encoders turn dataclasses into
    objects of their own accord.)"""

    __slots__ = ("key", "size")

    def __init__(self, key: str, size: int) -> None:
        self.key = key
        self.size = size

    def __eq__(self, other: object) -> bool:
        return isinstance(other, InlineFile) and (other.key, other.size) == (self.key, self.size)

    def __hash__(self) -> int:
        return hash((self.key, self.size))

    def __repr__(self) -> str:
        return f"InlineFile({self.key!r}, {self.size})"


@dataclass  # not frozen, as ``OutputView``
class JobView:
    """One job as every dialect renders it.

    ``request``, ``created_at`` and ``finished_at`` are None when the view was built from
    the poll's short read (``JobService.status(..., full=False)``).
    """

    id: str
    model: str
    status: JobStatus
    progress: float
    error_code: str | None
    error_message: str | None
    result: VideoResult | None
    base_url: str
    url_ttl_s: int
    video_url: str | None = None  # signed, absolute; set once the job succeeded
    link_expires_at: int | None = None  # unix time the signed links stop working
    request: GenerationRequest | None = None
    created_at: datetime | None = None
    finished_at: datetime | None = None
    cancel_requested: bool = False
    frame: tuple[int, int] | None = None  # (width, height) asked for
    queue_position: int | None = None  # jobs ahead of a queued one
    workers_online: int | None = None  # scale-out: live job slots serving its model
    inline: InlineFile | None = None  # the MP4, for dialects that answer it inline
    video_object_uri: str | None = None  # s3:// URI of its copy, when the caller asked
    # Every video of a succeeded job, the first being the one the fields above describe.
    outputs: tuple[OutputView, ...] = ()

    @property
    def percent(self) -> int:
        return round(self.progress * 100)

    @property
    def notes(self) -> list[str]:
        """What the engine could not do of what was asked (a line of dialogue in a
        language no voice speaks...), from every output, each once."""
        results: list[VideoResult | None] = [output.result for output in self.outputs]
        found = [note for result in results or [self.result] if result for note in result.notes]
        return list(dict.fromkeys(found))

    @property
    def adjustments(self) -> list[dict[str, Any]]:
        """What kinema changed in the request to serve it (see ``GenerationRequest``)."""
        return [] if self.request is None else [dict(a) for a in self.request.adjustments]


@dataclass(frozen=True)
class Creation:
    """A create call as a dialect parsed it: the canonical request, before validation.

    ``fields`` uses canonical names (``image``, ``duration``, ...); ``wire_names`` maps
    them back to the client's names so that errors point at what the client sent.
    """

    model: str
    fields: Mapping[str, Any]
    wire_names: Mapping[str, str] = field(default_factory=dict)
    callback_url: str | None = None
    callback_field: str = "callback_url"
    off_peak: bool = False
    idempotency_key: str | None = None
    adjustments: tuple[dict[str, Any], ...] = ()
    storage_uri: str | None = None  # checked against the storage kinema writes to
    wire_scope: str | None = None  # the project and location a Vertex AI client named
    # The job this one is derived from and how (a remix or an edit names its source; an
    # extension's source is found from its ``video`` field when it is accepted).
    derived_from: tuple[str, SourceKind] | None = None
    base_url: str | None = None  # of the creating request: the job's links start with it
    echo: Mapping[str, Any] | None = None  # kept with the job for the dialect to answer back


def creation_fingerprint(creation: Creation) -> str:
    """What an ``Idempotency-Key`` retry must repeat: the create as the client sent it
    (before images are fetched and stored), the same whatever base URL it came in on."""
    described: dict[str, Any] = {
        "model": creation.model,
        "fields": dict(creation.fields),
        "callback_url": creation.callback_url,
        "off_peak": creation.off_peak,
        "storage_uri": creation.storage_uri,
    }
    if creation.wire_scope is not None:  # absent otherwise: earlier fingerprints hold
        described["wire_scope"] = creation.wire_scope
    if creation.echo is not None:  # what the dialect answers back is part of the create
        described["echo"] = dict(creation.echo)
    return fingerprint(described)
