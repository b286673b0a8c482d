"""``kinema catalog ...``: the model catalog as an operator sees it."""

from __future__ import annotations

import typer

catalog_app = typer.Typer(help="Inspect the model catalog: where it is, what it offers, what fits.")
