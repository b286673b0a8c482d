"""``kinema``: serve, generate, manage keys, list models, report usage.

A thin layer over public functions: ``serve`` runs ``create_app``; ``generate`` is the
Python client against a server (a given ``--server``, or one started in-process on a free
loopback port over the local data directory).
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from kinema import cli_errors, cli_generate
from kinema.catalog_models import ModelSpec
from kinema.cli_catalog import catalog_app
from kinema.cli_help import JSON_OPTION, plain_help
from kinema.cli_ops import jobs_app, register_key_commands, register_worker_commands
from kinema.cli_pull import register_pull_command
from kinema.cli_table import Column, print_json, print_rows
from kinema.client import DEFAULT_MODEL, GenerationFailed, KinemaAPIError
from kinema.settings import Settings

if TYPE_CHECKING:
    from kinema.runtime import Runtime

plain_help()
app = typer.Typer(
    help="kinema: self-hosted image-to-video that speaks the Veo APIs.", rich_markup_mode=None
)
keys_app = typer.Typer(
    help="Manage API keys (shown once at creation, stored hashed).", rich_markup_mode=None
)
app.add_typer(keys_app, name="keys")
app.add_typer(jobs_app, name="jobs")
app.add_typer(catalog_app, name="catalog")
register_key_commands(keys_app)
register_worker_commands(app)
register_pull_command(app)
console = Console()
errors = Console(stderr=True, soft_wrap=True)  # an error stays one line, however long
CLI_KEY_FILE = "cli.key"  # the key ``kinema generate`` uses on its in-process server


@app.callback()
def options(
    debug: Annotated[
        bool, typer.Option("--debug", help="On an error, print the whole traceback.")
    ] = False,
) -> None:
    """kinema: self-hosted image-to-video that speaks the Veo APIs."""


def _configure_logging(log_level: str) -> None:
    """Log lines to stderr, with secrets redacted (``kinema.logsafe``)."""
    from kinema.logsafe import protect

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(message)s")
    protect(logging.getLogger().handlers)


def _settings(**overrides: Any) -> Settings:
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(metavar="ADDRESS", help="Address to bind [default: 127.0.0.1].")
    ] = None,
    port: Annotated[int | None, typer.Option(metavar="PORT", help="Port [default: 8000].")] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            metavar="N", help="Jobs generated at once in this process (0: API only) [default: 1]."
        ),
    ] = None,
    no_worker: Annotated[
        bool, typer.Option("--no-worker", help="API only: run no jobs here (same as --workers 0).")
    ] = False,
    log_level: Annotated[str, typer.Option(metavar="LEVEL", help="uvicorn log level.")] = "info",
    profile: Annotated[
        str | None,
        typer.Option(
            metavar="PROFILE",
            help="Catalog profile: 'gpu' serves the Veo ids from the best open model pulled "
            "here that fits the GPU (KINEMA_CATALOG_PROFILE).",
        ),
    ] = None,
) -> None:
    """Serve the HTTP API, with a worker in the same process unless --no-worker.

    Settings come from KINEMA_* environment variables (docs/deploy.md); the options here
    override them.
    """
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
        errors.print(f"[red]error:[/red] {escape(str(error))}")
        raise typer.Exit(2) from None


@app.command()
def worker(
    models: Annotated[
        str | None,
        typer.Option(metavar="IDS", help="Comma-separated model ids to take [default: all]."),
    ] = None,
    concurrency: Annotated[int, typer.Option(metavar="N", help="Jobs generated at once.")] = 1,
    gpus: Annotated[
        str | None,
        typer.Option(
            metavar="INDICES", help="GPU indices, e.g. 0,1,2,3: each diffusers job uses them all."
        ),
    ] = None,
    log_level: Annotated[str, typer.Option(metavar="LEVEL", help="Log level.")] = "info",
) -> None:
    """Generate videos without serving HTTP, until SIGTERM or Ctrl-C.

    Under KINEMA_DISPATCH=procrastinate it takes jobs from the models' procrastinate
    queues on the shared PostgreSQL and can run on any machine that reaches it and the
    storage; otherwise it claims from the jobs table like the embedded pool.
    """
    from kinema.observability.logs import configure_logging
    from kinema.runtime import Runtime
    from kinema.webhooks.renderers import build_deliverer

    configure_logging(_settings().log_format, log_level)
    chosen = [m.strip() for m in models.split(",") if m.strip()] if models else None
    runtime = Runtime.build(_settings(gpus=gpus), workers=max(concurrency, 1), models=chosen)
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
    image: Annotated[
        str, typer.Argument(metavar="IMAGE", help="Image file, http(s) URL, or '-' for none.")
    ],
    prompt: Annotated[
        str, typer.Argument(metavar="PROMPT", help="What should happen in the video.")
    ],
    output: Annotated[
        Path, typer.Option("-o", "--output", metavar="FILE", help="Where to write the MP4.")
    ] = Path("out.mp4"),
    model: Annotated[
        str, typer.Option(metavar="MODEL", help="Any model id `kinema models` lists.")
    ] = DEFAULT_MODEL,
    server: Annotated[
        str | None,
        typer.Option(
            metavar="URL", help="Server to use [default: one in this process, on the data dir]."
        ),
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(envvar="KINEMA_API_KEY", metavar="KEY", help="API key for --server."),
    ] = None,
    duration: Annotated[
        int | None, typer.Option(metavar="SECONDS", help="Length [default: the model's].")
    ] = None,
    resolution: Annotated[
        str | None, typer.Option(metavar="RES", help="720p, 1080p, ... [default: the model's].")
    ] = None,
    aspect_ratio: Annotated[
        str | None, typer.Option(metavar="RATIO", help="16:9 or 9:16 [default: the model's].")
    ] = None,
    audio: Annotated[
        bool | None, typer.Option("--audio/--no-audio", help="Sound [default: the model's].")
    ] = None,
    seed: Annotated[
        int | None, typer.Option(metavar="N", help="Seed, for models that take one.")
    ] = None,
    extend: Annotated[
        str | None,
        typer.Option(
            metavar="ID",
            help="The id an earlier `kinema generate` printed: that video made longer by "
            "--duration seconds (IMAGE must be '-'; models that extend videos).",
        ),
    ] = None,
) -> None:
    """Animate IMAGE as PROMPT describes and save the MP4; print the generation's id."""
    source = None if image == "-" else image
    if extend is not None and source is not None:
        errors.print("[red]error:[/red] --extend starts on the earlier video: give '-' as IMAGE")
        raise typer.Exit(2)
    is_url = source is not None and source.startswith(("http://", "https://"))
    if source is not None and not is_url and not Path(source).is_file():
        errors.print(f"[red]error:[/red] no image file {escape(repr(source))}")
        raise typer.Exit(2)
    request = cli_generate.Request(
        model=model, prompt=prompt, image=source, duration=duration, resolution=resolution,
        aspect_ratio=aspect_ratio, audio=audio, seed=seed, extend=extend,
    )  # fmt: skip
    with ExitStack() as stack:
        if server is None:
            server, api_key = stack.enter_context(_embedded_server())
        progress = stack.enter_context(
            Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TextColumn("{task.percentage:>3.0f}%"),
                TimeElapsedColumn(),
                console=console,
                transient=True,  # the bar goes once the video is written (or on an error)
            )
        )
        task = progress.add_task("queued", total=100)

        def show(generation: dict[str, Any]) -> None:
            done = generation.get("progress") or 0
            progress.update(task, description=str(generation.get("status")), completed=done)

        try:
            path, generation_id = cli_generate.generate(server, api_key, request, output, show)
        except (KinemaAPIError, GenerationFailed) as error:
            progress.stop()
            errors.print(f"[red]error:[/red] {escape(str(error))}")
            raise typer.Exit(1) from None
    size_mb = path.stat().st_size / 1e6
    console.print(f"wrote [bold]{escape(str(path))}[/bold] ({size_mb:.1f} MB)", soft_wrap=True)
    console.print(f"generation {generation_id}", soft_wrap=True)  # whole, to copy into --extend


@contextmanager
def _embedded_server() -> Iterator[tuple[str, str]]:
    """An in-process server over the local data dir, with the data dir's CLI key."""
    from kinema.runtime import Runtime
    from kinema.server import BackgroundServer

    settings = _settings()
    runtime = Runtime.build(settings, workers=max(settings.workers, 1))
    try:
        secret = _cli_key(runtime, settings.data_dir / CLI_KEY_FILE)
        with BackgroundServer(runtime) as server:
            yield server.url, secret
    finally:
        runtime.close()


def _cli_key(runtime: Runtime, path: Path) -> str:
    """One key for every in-process run, kept beside the database (mode 0600), so a later
    run sees the generations of an earlier one (``--extend``) and ``keys list`` shows it
    once, as ``kinema-cli``."""
    if path.is_file():
        secret = path.read_text().strip()
        if runtime.keys.verify(secret) is not None:
            return secret
    _, secret = runtime.keys.create("kinema-cli")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".tmp")
    partial.write_text(secret)
    partial.chmod(0o600)
    partial.replace(path)
    return secret


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Argument(metavar="NAME", help="A label for the key.")],
) -> None:
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
def keys_list(as_json: JSON_OPTION = False) -> None:
    """List keys (prefixes only)."""
    from kinema.runtime import Runtime

    runtime = Runtime.build(_settings(), workers=0)
    try:
        keys = runtime.keys.list()
    finally:
        runtime.close()
    rows = [
        {
            "id": key.id,
            "name": key.name,
            "prefix": key.prefix,
            "created": key.created_at.isoformat(timespec="seconds"),
            "revoked": key.revoked_at.isoformat(timespec="seconds") if key.revoked_at else "",
        }
        for key in keys
    ]
    if as_json:
        print_json(console, rows)
        return
    columns = [
        Column("id", whole=True),
        Column("name"),
        Column("prefix", whole=True),
        Column("created", optional=True),
        Column("revoked", optional=True),
    ]
    print_rows(console, columns, [[row[c.name] for c in columns] for row in rows])


@keys_app.command("revoke")
def keys_revoke(
    key: Annotated[str, typer.Argument(metavar="KEY", help="Key id or prefix.")],
) -> None:
    """Revoke a key: requests with it get 401 from now on."""
    from kinema.runtime import Runtime

    runtime = Runtime.build(_settings(), workers=0)
    try:
        revoked = runtime.keys.revoke(key)
    finally:
        runtime.close()
    console.print(f"revoked {revoked.id} ({escape(revoked.name)})")


@app.command()
def usage(
    key: Annotated[
        str | None,
        typer.Option("--key", metavar="KEY", help="Only this key (its id, prefix or name)."),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(metavar="WHEN", help="Jobs finished since: 7d, 12h, 30m or an ISO date."),
    ] = None,
    as_json: JSON_OPTION = False,
) -> None:
    """Seconds of video delivered, per API key and per engine."""
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
        start = parse_since(since) if since else None
        lines = usage_report(runtime.db, owner=owner, since=start)
    finally:
        runtime.close()
    names = {k.id: k for k in keys}
    rows = [
        {
            "key_id": line.owner,
            "key": f"{names[line.owner].name} ({names[line.owner].prefix})"
            if line.owner in names
            else line.owner,
            "engine": line.engine or "-",
            "jobs": line.jobs,
            "seconds": round(line.seconds, 3),
        }
        for line in lines
    ]
    if as_json:
        print_json(console, rows)
        return
    total = ["total", "", str(sum(line.jobs for line in lines))]
    total.append(f"{sum(line.seconds for line in lines):.1f}")
    table = [[str(r["key"]), str(r["engine"]), str(r["jobs"]), f"{r['seconds']:.1f}"] for r in rows]
    print_rows(
        console,
        [Column("key", whole=True), Column("engine"), Column("jobs"), Column("seconds")],
        [*table, total],
    )


@app.command()
def models(as_json: JSON_OPTION = False) -> None:
    """List the models this installation serves, with their limits and engines."""
    from kinema.profiles import ProfileUnavailable, load_catalog

    try:
        catalog = load_catalog(_settings())
    except ProfileUnavailable as error:
        errors.print(f"[red]error:[/red] {escape(str(error))}")
        raise typer.Exit(2) from None
    specs = [catalog.models[model_id] for model_id in catalog.model_ids()]
    if as_json:
        print_json(console, [_model_json(spec) for spec in specs])
        return
    columns = [
        Column("model", whole=True),
        Column("dialects"),
        Column("engines"),
        Column("inputs", optional=True),
        Column("durations", optional=True),
        Column("resolutions", optional=True),
        Column("audio", optional=True),
    ]
    rows = [
        [
            spec.id,
            ", ".join(spec.dialects),
            ", ".join(spec.engines),  # in the order a job tries them
            spec.inputs,
            "/".join(map(str, spec.durations)),
            "/".join(spec.resolutions),
            "yes" if spec.audio else "no",
        ]
        for spec in specs
    ]
    print_rows(console, columns, rows)


def _model_json(spec: ModelSpec) -> dict[str, Any]:
    return {
        "id": spec.id,
        "dialects": list(spec.dialects),
        "engines": list(spec.engines),
        "description": spec.description,
        "inputs": spec.inputs,
        "durations": list(spec.durations),
        "default_duration": spec.default_duration,
        "aspect_ratios": list(spec.aspect_ratios),
        "resolutions": list(spec.resolutions),
        "default_resolution": spec.default_resolution,
        "audio": spec.audio,
        "extends": spec.extension is not None,
    }


def main() -> None:
    cli_errors.run(lambda args: app(args=list(args), prog_name="kinema"), sys.argv[1:])
