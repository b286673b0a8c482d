"""``kinema catalog ...``: the model catalog as an operator sees it."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Annotated

import typer

catalog_app = typer.Typer(
    help="Inspect the model catalog: where it is, what it offers, what fits.",
    rich_markup_mode=None,
)


def _catalog_file() -> tuple[Path, bool]:
    """The catalog file in use, and whether it is one shipped with kinema (under the gpu
    profile, the GPU catalog the profile starts from)."""
    from kinema.settings import Settings

    settings = Settings()
    if settings.catalog_path is not None:
        return Path(settings.catalog_path), False
    name = "catalog.gpu.toml" if settings.catalog_profile == "gpu" else "catalog.toml"
    return Path(str(resources.files("kinema").joinpath(name))), True


def _hub_offline() -> bool:
    """Whether this machine may not download from the hub, as the server would see it."""
    from kinema.settings import Settings

    return Settings().hf_hub_offline


@catalog_app.command("path")
def catalog_path() -> None:
    """Print the path of the catalog file in use (KINEMA_CATALOG_PATH, or the shipped one)."""
    path, shipped = _catalog_file()
    typer.echo(str(path))
    if shipped:
        note = "the catalog shipped with kinema; set KINEMA_CATALOG_PATH to use your own"
    else:
        note = "from KINEMA_CATALOG_PATH: it replaces the shipped catalog (nothing is merged)"
    typer.echo(note, err=True)


@catalog_app.command("show")
def catalog_show() -> None:
    """Print the catalog file in use (start your own: kinema catalog show > my.toml)."""
    path, _ = _catalog_file()
    typer.echo(path.read_text("utf-8"), nl=False)


@catalog_app.command("validate")
def catalog_validate(
    file: Annotated[
        Path | None,
        typer.Argument(metavar="FILE", help="Catalog to check [default: the one in use]."),
    ] = None,
) -> None:
    """Check a catalog file as the server would load it; a mistake is named by its table
    and field, e.g. [models."my-model"] durations."""
    from kinema.catalog import Catalog
    from kinema.catalog_check import read_catalog_file, unknown_model_fields

    path = file if file is not None else _catalog_file()[0]
    # CatalogError: one line naming the table and field.
    catalog = Catalog.load(path, hub_offline=_hub_offline())
    for table, field in unknown_model_fields(read_catalog_file(path)):
        typer.echo(f"warning: [{table}] {field}: not a catalog field (ignored)", err=True)
    typer.echo(f"{path}: {len(catalog.engines)} engines, {len(catalog.models)} models: ok")


@catalog_app.command("plan")
def plan(
    catalog: Path = typer.Option(
        ..., "--catalog", metavar="FILE", help="The catalog TOML file to plan."
    ),
    gpu_memory_gb: float = typer.Option(
        ..., "--gpu-memory-gb", metavar="GIB", help="Each GPU's memory (GiB)."
    ),
) -> None:
    """Predicted GPU memory peak of every model x size x duration, and the measures (VAE
    tiling, offload) the planner takes; exits 1 if an offered combination cannot fit."""
    from kinema.catalog import Catalog
    from kinema.engines.diffusion.memory import format_plan

    data = tomllib.loads(catalog.read_text("utf-8"))
    loaded = Catalog.from_dict(data, plan=False, hub_offline=_hub_offline())
    loaded.plan_memory(gpu_memory_gb)
    lines, fits = format_plan(loaded.memory_plans, gpu_memory_gb)
    for line in lines:
        typer.echo(line)
    if not fits:
        raise typer.Exit(1)
