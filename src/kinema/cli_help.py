"""Help text as a user reads it: ``--model MODEL``, not Typer's ``<str>`` and ``<bool>``.

The commands use Typer's plain (click) help, which prints each option's metavar and no
type for a flag; ``plain_help`` makes arguments print their metavar alone as well.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from typer.core import TyperArgument

JSON_OPTION = Annotated[
    bool, typer.Option("--json", help="Print JSON (every field) instead of a table.")
]


def _no_type(self: TyperArgument, ctx: Any) -> str | None:
    return None


def plain_help() -> None:
    """Arguments show their metavar (``IMAGE``) with no ``<str>`` after it. Typer builds
    its argument objects itself, so the one method that prints the type is replaced."""
    TyperArgument.display_type_rich = _no_type  # type: ignore[method-assign,assignment]
