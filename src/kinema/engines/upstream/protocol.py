"""What every protocol module implements, and the values they exchange with the engine.

A protocol translates one ``Submission`` into its provider's create call and returns the
provider's reference for the operation; it reads a ``Status`` out of a poll, and cancels
where the provider can. It holds no state between calls: the engine records the
reference (an ``Operation``) through the worker before the first poll, so any process
can resume polling it.
"""

from __future__ import annotations

import base64
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from kinema.engines.upstream.http import UpstreamHTTP
from kinema.types import GenerationRequest


@dataclass(frozen=True)
class Operation:
    """A submitted job at a provider, as kinema records it on the job before polling."""

    engine: str  # the catalog engine it was submitted through
    ref: str  # the provider's operation name or task id
    submitted_at: float  # unix time of the submission; the engine's deadline counts from it
    submissions: int = 1  # the job's submissions so far, to any engine (part of the key)

    def to_json(self) -> dict[str, Any]:
        return {
            "engine": self.engine,
            "ref": self.ref,
            "submitted_at": self.submitted_at,
            "submissions": self.submissions,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Operation:
        return cls(
            engine=str(data["engine"]),
            ref=str(data["ref"]),
            submitted_at=float(data["submitted_at"]),
            submissions=int(data.get("submissions", 1)),
        )


@dataclass(frozen=True)
class Image:
    data: bytes
    mime_type: str

    @property
    def base64(self) -> str:
        return base64.b64encode(self.data).decode()

    @property
    def data_uri(self) -> str:
        return f"data:{self.mime_type};base64,{self.base64}"

    @property
    def filename(self) -> str:
        return "input." + self.mime_type.rpartition("/")[2].replace("jpeg", "jpg")


@dataclass(frozen=True)
class Submission:
    """One job as a provider must receive it."""

    request: GenerationRequest
    model: str  # the provider's model id
    width: int
    height: int
    options: frozenset[str]  # optional fields the model takes (the forwarding catalog's)
    idempotency_key: str
    image: Image | None = None
    last_image: Image | None = None
    reference_images: tuple[Image, ...] = ()

    def optional(self, name: str) -> Any:
        """The request's value of optional field ``name`` when the model takes it, else None."""
        if name not in self.options:
            return None
        attribute = "duration_s" if name == "duration" else name
        return getattr(self.request, attribute)

    @property
    def size(self) -> str:
        return f"{self.width}x{self.height}"


@dataclass(frozen=True)
class Status:
    """What one poll said."""

    done: bool
    progress: float | None = None  # 0..1 when the provider reports it
    video_url: str | None = None  # where to download the result
    video_bytes: bytes | None = None  # the result itself, when the provider inlines it
    video_file: Path | None = None  # ... or that, decoded to a file (a large answer)
    error: str | None = None  # the provider's message when the operation failed
    refused: bool = False  # the failure is a refusal (validation, content policy): final


class Protocol(ABC):
    """One wire protocol as a client speaks it."""

    name: ClassVar[str]
    idempotent: ClassVar[bool] = False  # whether submissions carry an Idempotency-Key
    last_frame: ClassVar[bool] = True  # whether a last frame image can be sent
    references: ClassVar[bool] = False  # whether reference images can be sent
    # Whether the provider's operation names are paths (``models/m/operations/1``) rather
    # than single ids; either way each segment must be a plain name (``check_ref``).
    ref_slashes: ClassVar[bool] = False

    def __init__(self, options: Mapping[str, Any]) -> None:
        self.options = options

    @abstractmethod
    def auth_headers(self, key: str | None) -> dict[str, str]:
        """Headers that authenticate every call (and same-host downloads)."""

    @abstractmethod
    def submit(self, http: UpstreamHTTP, submission: Submission) -> str:
        """Create the job; the provider's reference for it."""

    @abstractmethod
    def poll(self, http: UpstreamHTTP, ref: str) -> Status:
        """Read the job's state."""

    def cancel(self, http: UpstreamHTTP, ref: str) -> bool:
        """Ask the provider to stop; False when the protocol has no cancel."""
        return False

    def unsent(self, submission: Submission) -> str | None:
        """What of ``submission`` this protocol has no field for, if anything."""
        if submission.last_image is not None and not self.last_frame:
            return "a last frame image"
        if submission.reference_images and not self.references:
            return "reference images"
        return None

    def idempotency_headers(self, submission: Submission) -> dict[str, str]:
        return {"Idempotency-Key": submission.idempotency_key} if self.idempotent else {}


# One segment of an operation name: letters, digits and the few marks providers use in
# ids, starting with a letter or digit (so neither ``.`` nor ``..``), nothing that ends a
# path, starts a query or breaks a line.
_REF_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._~:@+=,-]{0,255}")
_MAX_REF = 1024


def check_ref(ref: str, slashes: bool, secret: str | None) -> str | None:
    """Why the provider's operation name ``ref`` may not be used, or None. The answer
    never repeats the name: it may hold the key, or anything else."""
    if secret and secret in ref:
        return "name repeats kinema's key; it is not used, logged or recorded"
    segments = ref.split("/") if slashes else [ref]
    if len(ref) > _MAX_REF or not all(_REF_SEGMENT.fullmatch(part) for part in segments):
        return (
            "name is not a plain name (letters, digits and ._~:@+=,- "
            + ("in /-separated parts" if slashes else "without /")
            + f", at most {_MAX_REF} characters)"
        )
    return None


def progress_percent(value: Any) -> float | None:
    """A provider's 0..100 progress as a fraction, or None if it sent none."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return min(1.0, max(0.0, float(value) / 100))


def failure(message: str | None, code: Any, fallback: str) -> Status:
    """A failed operation: a refusal when its code says the request itself was refused."""
    text = message or fallback
    return Status(done=True, error=text, refused=is_refusal(code, text))


# Error codes (or words in them) that mean the provider refused the request itself:
# asking again, or asking another provider the same thing, gives the same answer.
_REFUSAL_WORDS = ("invalid", "policy", "safety", "moderation", "refus", "content", "blocked")
_RPC_REFUSALS = frozenset({3, 7, 9})  # INVALID_ARGUMENT, PERMISSION_DENIED, FAILED_PRECONDITION


def is_refusal(code: Any, message: str = "") -> bool:
    if isinstance(code, int) and not isinstance(code, bool):
        return code in _RPC_REFUSALS or code in (400, 422)
    words = f"{code or ''}".lower()
    return any(word in words for word in _REFUSAL_WORDS)


PROTOCOLS: tuple[str, ...] = (
    "gemini",
    "vertex",
    "aimlapi",
    "openai",
    "unified",
    "v1",
    "vllm_omni",
    "sglang",
)
