"""``kinema catalog ...``: the model catalog as an operator sees it."""

from __future__ import annotations

import tomllib
from pathlib import Path

import typer

catalog_app = typer.Typer(help="Inspect the model catalog: where it is, what it offers, what fits.")


@catalog_app.command("plan")
def plan(
    catalog: Path = typer.Option(..., "--catalog", help="The catalog TOML file to plan."),
    gpu_memory_gb: float = typer.Option(..., "--gpu-memory-gb", help="Each GPU's memory (GiB)."),
) -> None:
    """Predicted GPU memory peak of every model x size x duration, and the measures (VAE
    tiling, offload) the planner takes; exits 1 if an offered combination cannot fit."""
    from kinema.catalog import Catalog
    from kinema.engines.diffusion.memory import format_plan

    loaded = Catalog.from_dict(tomllib.loads(catalog.read_text("utf-8")), plan=False)
    loaded.plan_memory(gpu_memory_gb)
    lines, fits = format_plan(loaded.memory_plans, gpu_memory_gb)
    for line in lines:
        typer.echo(line)
    if not fits:
        raise typer.Exit(1)
