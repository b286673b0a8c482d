"""Operator commands: ``kinema jobs list|show|cancel|retry``, ``kinema keys quota`` and
``kinema workers``.

They act on the database and storage that the settings name (``KINEMA_*``), so they see
every key's jobs, whichever server or worker runs them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from kinema.cli_help import JSON_OPTION
from kinema.cli_table import Column, print_json, print_rows
from kinema.errors import KinemaError
from kinema.settings import Settings
from kinema.types import Job, JobStatus

if TYPE_CHECKING:
    from kinema.runtime import Runtime

jobs_app = typer.Typer(
    help="Inspect and act on every key's jobs (operators).", rich_markup_mode=None
)
console = Console()
errors = Console(stderr=True, soft_wrap=True)  # an error stays one line, however long


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
        list[JobStatus] | None,
        typer.Option(metavar="STATE", help="Only jobs in this state (repeatable)."),
    ] = None,
    model: Annotated[
        list[str] | None, typer.Option(metavar="MODEL", help="Only this model (repeatable).")
    ] = None,
    key: Annotated[
        str | None, typer.Option(metavar="KEY", help="Only this key's jobs (id or prefix).")
    ] = None,
    limit: Annotated[int, typer.Option(metavar="N", help="At most this many, newest first.")] = 50,
    as_json: JSON_OPTION = False,
) -> None:
    """List jobs of every key, newest first (STATE: queued, running, succeeded, failed,
    cancelled, expired)."""
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
    finally:
        runtime.close()
    if as_json:
        print_json(console, [_job_row(job) for job in jobs])
        return
    columns = [
        Column("id", whole=True),
        Column("status"),
        Column("model", whole=True),
        Column("progress"),
        Column("key", whole=True, optional=True),
        Column("error", optional=True),
        Column("created", optional=True),
        Column("dialect", optional=True),
    ]
    rows = [
        [
            job.id,
            job.status.value,
            job.model,
            f"{job.progress * 100:.0f}%",
            job.owner,
            job.error_code or "",
            _when(job.created_at),
            job.dialect,
        ]
        for job in jobs
    ]
    print_rows(console, columns, rows)


def _job_row(job: Job) -> dict[str, Any]:
    full = job_json(job)
    return {name: full[name] for name in _LISTED}


_LISTED = ("id", "status", "model", "dialect", "key_id", "progress", "attempt", "created_at",
           "started_at", "finished_at", "error")  # fmt: skip


@jobs_app.command("show")
def jobs_show(
    job_id: Annotated[str, typer.Argument(metavar="JOB", help="Job id (or its unique start).")],
) -> None:
    """Print one job as JSON."""
    runtime = _runtime()
    try:
        console.print_json(json.dumps(job_json(_find(runtime, job_id))))
    finally:
        runtime.close()


@jobs_app.command("cancel")
def jobs_cancel(
    job_id: Annotated[str, typer.Argument(metavar="JOB", help="Job id (or its unique start).")],
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
    job_id: Annotated[
        str, typer.Argument(metavar="JOB", help="A failed job's id (or its unique start).")
    ],
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
    key: Annotated[str, typer.Argument(metavar="KEY", help="Key id or prefix.")],
    max_active_jobs: Annotated[
        int | None,
        typer.Option(
            metavar="N", help="Jobs queued or running at once (omit to keep; -1: no limit)."
        ),
    ] = None,
    max_video_s_per_day: Annotated[
        int | None,
        typer.Option(
            metavar="SECONDS", help="Seconds of video per 24 hours (omit to keep; -1: no limit)."
        ),
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


def workers(
    prune: Annotated[
        bool, typer.Option("--prune", help="Delete the rows of dead workers now.")
    ] = False,
    as_json: JSON_OPTION = False,
) -> None:
    """List scale-out workers, live and dead (dead: silent for longer than a lease;
    their rows are deleted after a few leases, or now with --prune)."""
    runtime = _runtime()
    lease_s = runtime.settings.lease_s
    try:
        if prune:
            removed = runtime.registry.prune(dead_after_s=lease_s)
            errors.print(f"removed {removed} dead worker row{'s' if removed != 1 else ''}")
        rows = runtime.registry.listing(live_within_s=lease_s)
    finally:
        runtime.close()
    now = datetime.now(UTC)
    listed = [
        {
            "id": row["id"],
            "host": row["host"],
            "state": "live" if row["live"] else "dead",
            "models": row["models"],
            "concurrency": row["concurrency"],
            "started_at": _when(row["started_at"]),  # type: ignore[arg-type]
            "last_seen": _when(row["last_seen"]),  # type: ignore[arg-type]
            "silent_s": round((now - row["last_seen"]).total_seconds(), 1),  # type: ignore[operator]
        }
        for row in rows
    ]
    if as_json:
        print_json(console, listed)
        return
    columns = [
        Column("id", whole=True),
        Column("state"),
        Column("last seen"),
        Column("models"),
        Column("concurrency", optional=True),
        Column("host", optional=True),
    ]
    print_rows(
        console,
        columns,
        [
            [
                w["id"],
                w["state"],
                f"{w['silent_s']:.0f} s ago",
                "all" if w["models"] is None else ", ".join(w["models"]),
                str(w["concurrency"]),
                w["host"],
            ]
            for w in listed
        ],
    )


def register_worker_commands(app: typer.Typer) -> None:
    """Add ``workers`` to the ``kinema`` command."""
    app.command("workers")(workers)
