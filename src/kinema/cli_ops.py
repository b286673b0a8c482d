"""Operator commands: ``kinema jobs list|show|cancel|retry`` and ``kinema keys quota``.

They act on the database and storage that the settings name (``KINEMA_*``), so they see
every key's jobs, whichever server or worker runs them.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from kinema.errors import KinemaError
from kinema.settings import Settings
from kinema.types import Job, JobStatus

if TYPE_CHECKING:
    from kinema.runtime import Runtime

jobs_app = typer.Typer(help="Inspect and act on every key's jobs (operators).")
console = Console()
errors = Console(stderr=True)


def cells(*values: object) -> list[Text]:
    """Table cells shown as they are: a key named ``[bold]x[/]`` is not rich markup."""
    return [Text(str(value)) for value in values]


def _runtime() -> Runtime:
    from kinema.runtime import Runtime

    return Runtime.build(Settings(), workers=0)


def _fail(error: KinemaError) -> typer.Exit:
    errors.print(f"[red]error:[/red] {escape(error.message)}")
    return typer.Exit(1)


def _when(moment: datetime | None) -> str:
    return moment.isoformat(timespec="seconds") if moment else ""


def _find(runtime: Runtime, job_id: str) -> Job:
    found = runtime.inspector.find(job_id)
    if not found:
        errors.print(f"[red]error:[/red] no job {escape(repr(job_id))}")
        raise typer.Exit(1)
    if len(found) > 1:
        errors.print(
            f"[red]error:[/red] {escape(repr(job_id))} matches several jobs; give more of the id"
        )
        raise typer.Exit(1)
    return found[0]


def job_json(job: Job) -> dict[str, Any]:
    """A job as ``jobs show`` prints it."""
    return {
        "id": job.id,
        "key_id": job.owner,
        "model": job.model,
        "dialect": job.dialect,
        "status": job.status.value,
        "progress": round(job.progress, 4),
        "attempt": job.attempt,
        "priority": job.priority,
        "cancel_requested": job.cancel_requested,
        "created_at": _when(job.created_at),
        "started_at": _when(job.started_at),
        "finished_at": _when(job.finished_at),
        "error": (
            {"code": job.error_code, "message": job.error_message} if job.error_code else None
        ),
        "result": None if job.result is None else vars(job.result),
        "request": job.request.to_json(),
    }


@jobs_app.command("list")
def jobs_list(
    state: Annotated[
        list[JobStatus] | None, typer.Option(help="Only jobs in this state (repeatable).")
    ] = None,
    model: Annotated[list[str] | None, typer.Option(help="Only this model (repeatable).")] = None,
    key: Annotated[str | None, typer.Option(help="Only this key's jobs (id or prefix).")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
) -> None:
    """List jobs of every key, newest first."""
    runtime = _runtime()
    try:
        owner = None
        if key is not None:
            try:
                owner = runtime.keys.find(key).id
            except KinemaError as error:
                raise _fail(error) from None
        jobs = runtime.inspector.list(
            states=state or (), models=model or (), owner=owner, limit=limit
        )
        table = Table("id", "status", "model", "dialect", "key", "progress", "created", "error")
        for job in jobs:
            table.add_row(
                *cells(
                    job.id,
                    job.status.value,
                    job.model,
                    job.dialect,
                    job.owner,
                    f"{job.progress * 100:.0f}%",
                    _when(job.created_at),
                    job.error_code or "",
                )
            )
        console.print(table)
    finally:
        runtime.close()


@jobs_app.command("show")
def jobs_show(job_id: Annotated[str, typer.Argument(help="Job id (or its unique start).")]) -> None:
    """Print one job as JSON."""
    runtime = _runtime()
    try:
        console.print_json(json.dumps(job_json(_find(runtime, job_id))))
    finally:
        runtime.close()


@jobs_app.command("cancel")
def jobs_cancel(
    job_id: Annotated[str, typer.Argument(help="Job id (or its unique start).")],
) -> None:
    """Cancel a job: a queued one ends now, a running one at its worker's next heartbeat."""
    runtime = _runtime()
    try:
        job = _find(runtime, job_id)
        try:
            job = runtime.service.cancel(job.owner, job.id)
        except KinemaError as error:
            raise _fail(error) from None
        note = " (its worker stops it shortly)" if job.status is JobStatus.RUNNING else ""
        console.print(f"job {job.id}: {job.status.value}{note}")
    finally:
        runtime.close()


@jobs_app.command("retry")
def jobs_retry(
    job_id: Annotated[str, typer.Argument(help="A failed job's id (or its unique start).")],
) -> None:
    """Queue a failed job again, as a new job with the same request and inputs."""
    runtime = _runtime()
    try:
        job = _find(runtime, job_id)
        try:
            retried = runtime.service.retry(job.id)
        except KinemaError as error:
            raise _fail(error) from None
        console.print(f"job {job.id} queued again as {retried.id}")
    finally:
        runtime.close()


def keys_quota(
    key: Annotated[str, typer.Argument(help="Key id or prefix.")],
    max_active_jobs: Annotated[
        int | None,
        typer.Option(help="Jobs queued or running at once (omit to keep; -1: no limit)."),
    ] = None,
    max_video_s_per_day: Annotated[
        int | None,
        typer.Option(help="Seconds of video per 24 hours (omit to keep; -1: no limit)."),
    ] = None,
) -> None:
    """Show or set a key's quotas; requests past one get 429 naming it."""
    runtime = _runtime()
    try:
        try:
            current = runtime.keys.find(key)
            if max_active_jobs is not None or max_video_s_per_day is not None:
                current = runtime.keys.set_quota(
                    current.id,
                    max_active_jobs=_limit(max_active_jobs, current.max_active_jobs),
                    max_video_s_per_day=_limit(
                        max_video_s_per_day, current.max_video_s_per_day
                    ),
                )
        except KinemaError as error:
            raise _fail(error) from None

        def shown(value: int | None) -> str:
            return "unlimited" if value is None else str(value)

        console.print(
            f"key {current.id} ({escape(current.name)}): "
            f"max_active_jobs={shown(current.max_active_jobs)} "
            f"max_video_s_per_day={shown(current.max_video_s_per_day)}"
        )
    finally:
        runtime.close()


def _limit(given: int | None, current: int | None) -> int | None:
    if given is None:
        return current
    return None if given < 0 else given


def register_key_commands(keys_app: typer.Typer) -> None:
    """Add ``quota`` to the ``kinema keys`` group."""
    keys_app.command("quota")(keys_quota)
