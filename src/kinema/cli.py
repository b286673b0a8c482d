"""``kinema``: serve, generate, manage keys, list models, report usage.

A thin layer over public functions: ``serve`` runs ``create_app``; ``generate`` is the
Python client against a server (a given ``--server``, or one started in-process on a free
loopback port over the local data directory).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from kinema.cli_catalog import catalog_app
from kinema.cli_ops import cells, jobs_app, register_key_commands
from kinema.cli_pull import register_pull_command
from kinema.client import DEFAULT_MODEL, GenerationFailed, KinemaAPIError, KinemaClient
from kinema.settings import Settings

app = typer.Typer(help="kinema: self-hosted image-to-video that speaks the Veo APIs.")
keys_app = typer.Typer(help="Manage API keys (shown once at creation, stored hashed).")
app.add_typer(keys_app, name="keys")
app.add_typer(jobs_app, name="jobs")
app.add_typer(catalog_app, name="catalog")
register_key_commands(keys_app)
register_pull_command(app)
console = Console()
errors = Console(stderr=True)


def _configure_logging(log_level: str) -> None:
    """Log lines to stderr, with secrets redacted (``kinema.logsafe``)."""
    from kinema.logsafe import protect

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(message)s")
    protect(logging.getLogger().handlers)


def _settings(**overrides: Any) -> Settings:
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to bind.")] = None,
    workers: Annotated[
        int | None, typer.Option(help="Jobs generated at once in this process (0: API only).")
    ] = None,
    no_worker: Annotated[
        bool, typer.Option("--no-worker", help="API only: run no jobs here (same as --workers 0).")
    ] = False,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
    profile: Annotated[
        str | None,
        typer.Option(
            help="Catalog profile: 'gpu' serves the Veo ids from the best open model pulled "
            "here that fits the GPU (KINEMA_CATALOG_PROFILE)."
        ),
    ] = None,
) -> None:
    """Serve the HTTP API, with a worker in the same process unless --no-worker."""
    from kinema.profiles import ProfileUnavailable
    from kinema.server import serve as run

    _configure_logging(log_level)
    workers = 0 if no_worker else workers
    try:
        run(
            _settings(host=host, port=port, workers=workers, catalog_profile=profile),
            log_level=log_level,
        )
    except ProfileUnavailable as error:
        errors.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from None


@app.command()
def worker(
    models: Annotated[
        str | None,
        typer.Option(help="Comma-separated model ids to take (default: every model)."),
    ] = None,
    concurrency: Annotated[int, typer.Option(help="Jobs generated at once.")] = 1,
    gpus: Annotated[
        str | None,
        typer.Option(help="GPU indices, e.g. 0,1,2,3: each diffusers job runs across them all."),
    ] = None,
    log_level: Annotated[str, typer.Option(help="Log level.")] = "info",
) -> None:
    """Generate videos without serving HTTP, until SIGTERM or Ctrl-C.

    Under KINEMA_DISPATCH=procrastinate it takes jobs from the models' procrastinate queues
    on the shared PostgreSQL and can run on any machine that reaches it and the storage;
    otherwise it claims from the jobs table like the embedded pool.
    """
    from kinema.errors import KinemaError
    from kinema.observability.logs import configure_logging
    from kinema.runtime import Runtime
    from kinema.webhooks.renderers import build_deliverer

    configure_logging(_settings().log_format, log_level)
    chosen = [m.strip() for m in models.split(",") if m.strip()] if models else None
    try:
        runtime = Runtime.build(_settings(gpus=gpus), workers=max(concurrency, 1), models=chosen)
    except KinemaError as error:
        errors.print(f"[red]error:[/red] {escape(error.message)}")
        raise typer.Exit(2) from None
    stop = threading.Event()
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, lambda *_: stop.set())
    # Webhooks are delivered by whichever processes run: a deployment of workers and
    # API-only servers still delivers when no API process is up.
    deliverer = build_deliverer(runtime)
    try:
        runtime.start()
        deliverer.start()
        while not stop.wait(1.0):
            if runtime.queue_worker is not None and not runtime.queue_worker.alive:
                errors.print("[red]error:[/red] the queue worker stopped; see the log")
                raise typer.Exit(1)
    finally:
        deliverer.stop()
        runtime.close()


@app.command()
def generate(
    image: Annotated[str, typer.Argument(help="Image file, http(s) URL, or '-' for none.")],
    prompt: Annotated[str, typer.Argument(help="What should happen in the video.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the MP4.")] = Path(
        "out.mp4"
    ),
    model: Annotated[str, typer.Option(help="Model id (see `kinema models`).")] = DEFAULT_MODEL,
    server: Annotated[
        str | None,
        typer.Option(help="Server URL; default: an in-process server on the local data dir."),
    ] = None,
    api_key: Annotated[
        str | None, typer.Option(envvar="KINEMA_API_KEY", help="API key for --server.")
    ] = None,
    duration: Annotated[int | None, typer.Option(help="Seconds.")] = None,
    resolution: Annotated[str | None, typer.Option(help="720p, 1080p, ...")] = None,
    aspect_ratio: Annotated[str | None, typer.Option(help="16:9 or 9:16.")] = None,
    audio: Annotated[bool | None, typer.Option("--audio/--no-audio", help="Sound.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed (models that take one).")] = None,
    extend: Annotated[
        str | None,
        typer.Option(
            help="Id of an earlier generation to extend by --duration more seconds (IMAGE "
            "must be '-'; models that extend videos, e.g. google/veo-3.1-i2v-fast)."
        ),
    ] = None,
) -> None:
    """Animate IMAGE as PROMPT describes and save the MP4; print the generation's id."""
    fields: dict[str, Any] = {
        "duration": duration,
        "resolution": resolution,
        "aspect_ratio": aspect_ratio,
        "generate_audio": audio,
        "seed": seed,
        "extend_from": extend,
    }
    source = None if image == "-" else image
    if extend is not None and source is not None:
        errors.print("[red]error:[/red] --extend starts on the earlier video: give '-' as IMAGE")
        raise typer.Exit(2)
    with ExitStack() as stack:
        if server is None:
            server, api_key = stack.enter_context(_embedded_server())
        client = stack.enter_context(KinemaClient(server, api_key))
        progress = stack.enter_context(
            Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TextColumn("{task.percentage:>3.0f}%"),
                TimeElapsedColumn(),
                console=console,
            )
        )
        task = progress.add_task("queued", total=100)

        generation_id = ""

        def show(generation: dict[str, Any]) -> None:
            nonlocal generation_id
            generation_id = str(generation.get("id", generation_id))
            done = 100 if generation.get("status") == "completed" else generation.get("progress")
            progress.update(task, description=str(generation.get("status")), completed=done or 0)

        try:
            path = client.generate(
                source, prompt, output=output, model=model, on_update=show, **fields
            )
        except (KinemaAPIError, GenerationFailed) as error:
            progress.stop()
            errors.print(f"[red]error:[/red] {escape(str(error))}")
            raise typer.Exit(1) from None
    console.print(f"wrote [bold]{path}[/bold] ({path.stat().st_size / 1e6:.1f} MB)")
    console.print(f"generation {generation_id}")


@contextmanager
def _embedded_server() -> Iterator[tuple[str, str]]:
    """An in-process server over the local data dir, with a key that lives for one run."""
    from kinema.runtime import Runtime
    from kinema.server import BackgroundServer

    settings = _settings()
    runtime = Runtime.build(settings, workers=max(settings.workers, 1))
    key, secret = runtime.keys.create(f"kinema-generate-{os.getpid()}")
    try:
        with BackgroundServer(runtime) as server:
            yield server.url, secret
    finally:
        runtime.keys.revoke(key.id)
        runtime.close()


@keys_app.command("create")
def keys_create(name: Annotated[str, typer.Argument(help="A label for the key.")]) -> None:
    """Create a key; it is printed once and only its hash is kept."""
    from kinema.runtime import Runtime

    runtime = Runtime.build(_settings(), workers=0)
    key, secret = runtime.keys.create(name)
    errors.print(
        f"created key {key.id} ({escape(key.name)}); store it now, it is not shown again."
    )
    errors.print(f"webhooks for this key are signed with: {runtime.keys.webhook_secret(key.id)}")
    console.print(secret)


@keys_app.command("list")
def keys_list() -> None:
    """List keys (prefixes only)."""
    from kinema.runtime import Runtime

    runtime = Runtime.build(_settings(), workers=0)
    table = Table("id", "name", "prefix", "created", "revoked")
    for key in runtime.keys.list():
        revoked = key.revoked_at.isoformat(timespec="seconds") if key.revoked_at else ""
        created = key.created_at.isoformat(timespec="seconds")
        table.add_row(*cells(key.id, key.name, key.prefix, created, revoked))
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(key: Annotated[str, typer.Argument(help="Key id or prefix.")]) -> None:
    """Revoke a key: requests with it get 401 from now on."""
    from kinema.errors import NotFound
    from kinema.runtime import Runtime

    runtime = Runtime.build(_settings(), workers=0)
    try:
        revoked = runtime.keys.revoke(key)
    except NotFound as error:
        errors.print(f"[red]error:[/red] {escape(error.message)}")
        raise typer.Exit(1) from None
    console.print(f"revoked {revoked.id} ({escape(revoked.name)})")


@app.command()
def usage(
    key: Annotated[
        str | None, typer.Option("--key", help="Only this key (its id, shown prefix or name).")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Jobs finished since: 7d, 12h, 30m or an ISO date.")
    ] = None,
) -> None:
    """Seconds of video delivered, per API key and per engine."""
    from kinema.errors import InvalidRequest
    from kinema.jobs.usage import parse_since
    from kinema.jobs.usage import usage as usage_report
    from kinema.runtime import Runtime

    runtime = Runtime.build(_settings(), workers=0)
    try:
        keys = runtime.keys.list()
        owner = None
        if key is not None:
            found = [k for k in keys if key in (k.id, k.prefix, k.name)]
            if len(found) != 1:
                problem = "matches several keys; use the id" if found else "is not a key"
                errors.print(f"[red]error:[/red] {escape(repr(key))} {problem}")
                raise typer.Exit(1)
            owner = found[0].id
        try:
            start = parse_since(since) if since else None
        except InvalidRequest as error:
            errors.print(f"[red]error:[/red] {escape(error.message)}")
            raise typer.Exit(1) from None
        lines = usage_report(runtime.db, owner=owner, since=start)
    finally:
        runtime.close()
    names = {k.id: f"{k.name} ({k.prefix})" for k in keys}
    table = Table("key", "engine", "jobs", "seconds")
    for line in lines:
        owner = names.get(line.owner, line.owner)
        table.add_row(*cells(owner, line.engine or "-", line.jobs, f"{line.seconds:.1f}"))
    total = sum(line.seconds for line in lines)
    table.add_row("total", "", str(sum(line.jobs for line in lines)), f"{total:.1f}")
    console.print(table)


@app.command()
def models() -> None:
    """List the models this installation serves, with their limits and engines."""
    from kinema.profiles import ProfileUnavailable, load_catalog

    try:
        catalog = load_catalog(_settings())
    except ProfileUnavailable as error:
        errors.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from None
    table = Table("model", "dialect", "engine", "inputs", "durations", "resolutions", "audio")
    for model_id in catalog.model_ids():
        spec = catalog.models[model_id]
        table.add_row(
            spec.id,
            spec.dialect,
            ", ".join(spec.engines),  # in the order a job tries them
            spec.inputs,
            "/".join(map(str, spec.durations)),
            "/".join(spec.resolutions),
            "yes" if spec.audio else "no",
        )
    console.print(table)


def main() -> None:
    app()
