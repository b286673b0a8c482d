"""Rows of the jobs table read back as domain objects, for the store and the operator's
views alike."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row

from kinema.jobs.direct import video_result
from kinema.types import GenerationRequest, Job, JobStatus, VideoResult


def job_from_row(row: Row[Any]) -> Job:
    """A row of the jobs table as a ``Job`` (its outputs parsed, ``result`` the first)."""
    data = row._mapping
    outputs = _outputs(data["result"], data["outputs"])
    return Job(
        id=data["id"],
        owner=data["owner"],
        model=data["model"],
        status=JobStatus(data["status"]),
        request=GenerationRequest.from_json(data["request"]),
        attempt=data["attempt"],
        progress=data["progress"],
        created_at=data["created_at"],
        updated_at=data["updated_at"],
        started_at=data["started_at"],
        finished_at=data["finished_at"],
        lease_until=data["lease_until"],
        cancel_requested=bool(data["cancel_requested"]),
        priority=data["priority"],
        idempotency_key=data["idempotency_key"],
        error_code=data["error_code"],
        error_message=data["error_message"],
        result=outputs[0] if outputs else None,
        dialect=data["dialect"],
        outputs=outputs,
        base_url=data["base_url"],
        queue_turn=data["queue_turn"],
        engine=data["engine"],
        upstream=data["upstream"],
    )


def _outputs(result: dict[str, Any] | None, outputs: Any) -> tuple[VideoResult, ...]:
    if outputs:
        return tuple(video_result(output) for output in outputs)
    return () if result is None else (video_result(result),)
