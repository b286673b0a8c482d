"""``kinema pull NAME``: download an engine's weights (and LoRAs) into the models directory.

NAME is an engine of the GPU catalog (``KINEMA_CATALOG_PATH``, or the shipped
``catalog.gpu.toml``) or a model id there (then every engine it uses). Each hub repository
an engine names (``repo``, a LoRA's ``repo`` + ``weight_name``, a hub-id ``upsampler``)
lands at ``<models dir>/<owner>/<name>`` (``KINEMA_MODELS_DIR``, default
``<data dir>/models``), where the servers read it offline (``kinema.engines.diffusion.
local_weights``).

Before anything is fetched, the sizes of the files still missing (from the hub's metadata:
``huggingface_hub``'s dry run, the same listing the download uses) are added up and
compared with the free space of the models directory's disk; the pull is refused when it
would leave less than ``--reserve-gb``. Downloads go through ``huggingface_hub``
(``snapshot_download`` / ``hf_hub_download`` into a local directory), which shows
progress, continues a file from the byte it reached when the connection drops (HTTP
``Range``), and skips the files a previous run completed. ``HF_ENDPOINT`` and ``HF_TOKEN``
are honoured; with ``HF_HUB_OFFLINE=1`` the command refuses, saying why.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from kinema.engines.config import DIFFUSION_KINDS, EngineConfig
from kinema.engines.diffusion.local_weights import Download, downloads
from kinema.settings import Settings

GIB = 1024**3
console = Console(stderr=True)


class PullRefused(Exception):
    """The pull cannot go ahead; the message says why and what to do."""


def register_pull_command(app: typer.Typer) -> None:
    app.command("pull")(pull)


def pull(
    name: Annotated[str, typer.Argument(help="An engine (or model id) of the GPU catalog.")],
    catalog: Annotated[
        Path | None,
        typer.Option(help="GPU catalog to read (default: KINEMA_CATALOG_PATH or the shipped one)."),
    ] = None,
    models_dir: Annotated[
        Path | None, typer.Option(help="Where weights go (default: KINEMA_MODELS_DIR).")
    ] = None,
    reserve_gb: Annotated[
        float, typer.Option(help="Free disk to keep after the download, in GiB.")
    ] = 5.0,
) -> None:
    """Download an engine's weights and LoRAs from the Hugging Face hub into the models
    directory, after checking the disk has room; `kinema serve` then reads them offline."""
    overrides: dict[str, Any] = {"catalog_path": catalog, "models_dir": models_dir}
    settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
    try:
        wanted = plan(name, settings)
        for download in wanted:
            fetch(download, reserve_gb, offline=settings.hf_hub_offline)
    except PullRefused as refused:
        console.print(f"[red]error:[/red] {refused}")
        raise typer.Exit(1) from None
    for download in wanted:
        console.print(f"{download.repo} ({download.what}): {download.directory}")
    console.print(
        "done; serve the Veo ids from it with KINEMA_CATALOG_PROFILE=gpu kinema serve "
        f"(models directory {settings.resolved_models_dir})"
    )


def plan(name: str, settings: Settings) -> list[Download]:
    """Every download the engine (or each engine of the model) ``name`` needs."""
    from kinema.profiles import gpu_catalog_data

    data = gpu_catalog_data(settings)
    engines: dict[str, Any] = data.get("engines", {})
    model = data.get("models", {}).get(name)
    if name in engines:
        names = [name]
    elif model is not None:
        chain = model.get("engine", model.get("engines", []))
        names = [chain] if isinstance(chain, str) else list(chain)
    else:
        known = ", ".join(n for n, t in engines.items() if t.get("kind") in DIFFUSION_KINDS)
        raise PullRefused(f"{name!r} is no engine or model of the GPU catalog; engines: {known}")
    found: list[Download] = []
    for engine in names:
        table = engines[engine]
        if table.get("kind") not in DIFFUSION_KINDS:
            continue
        config = EngineConfig(engine, str(table["kind"]), int(table.get("fps", 24)), table)
        found += downloads(config, settings.resolved_models_dir)
    if not found:
        raise PullRefused(
            f"{name!r} names no hub repository to download (give its engine repo = ...)"
        )
    return found


def fetch(download: Download, reserve_gb: float, *, offline: bool) -> None:
    """Check the disk, then download ``download`` with progress; ``offline`` (the
    settings' ``hf_hub_offline``) refuses at once."""
    if offline:
        raise PullRefused("HF_HUB_OFFLINE is set: kinema pull needs to reach the hub")
    need, count = missing_bytes(download)
    free = shutil.disk_usage(_existing(download.directory)).free
    console.print(
        f"{download.repo}: {count} file(s), {need / GIB:.2f} GiB to fetch into "
        f"{download.directory} ({free / GIB:.1f} GiB free)"
    )
    if need + reserve_gb * GIB > free:
        raise PullRefused(
            f"{download.repo} needs {need / GIB:.2f} GiB and {reserve_gb:g} GiB must stay "
            f"free, but {download.directory}'s disk has {free / GIB:.2f} GiB free; free some "
            "space or set KINEMA_MODELS_DIR to a larger disk"
        )
    if count:
        _run_hub(download, dry_run=False)


def missing_bytes(download: Download) -> tuple[int, int]:
    """Bytes and number of the files not yet in ``download.directory``, from the hub."""
    infos = _run_hub(download, dry_run=True)
    fetching = [info for info in infos if info.will_download]
    return sum(info.file_size or 0 for info in fetching), len(fetching)


def _run_hub(download: Download, *, dry_run: bool) -> list[Any]:
    from huggingface_hub import hf_hub_download, snapshot_download

    download.directory.mkdir(parents=True, exist_ok=True)
    try:
        if not download.files:
            result = snapshot_download(
                download.repo,
                revision=download.revision,
                local_dir=download.directory,
                dry_run=dry_run,
            )
            return list(result) if dry_run else []
        return [
            hf_hub_download(
                download.repo,
                name,
                revision=download.revision,
                local_dir=download.directory,
                dry_run=dry_run,
            )
            for name in download.files
        ]
    except Exception as error:  # the hub's HTTP, connection and disk errors alike
        what = "listing" if dry_run else "downloading"
        raise PullRefused(f"{what} {download.repo} failed: {_first_line(error)}") from None


def _existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path("/")


def _first_line(error: BaseException) -> str:
    lines: Iterable[str] = str(error).strip().splitlines()
    return next(iter(lines), type(error).__name__)
