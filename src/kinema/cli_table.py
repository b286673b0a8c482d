"""Tables and JSON for the listing commands (``models``, ``jobs list``, ``keys list``,
``usage``): an id is never cut, however narrow the terminal.

A table that does not fit drops its optional columns first; if the ids alone are still
too wide, each row is printed as a block of ``name: value`` lines. ``--json`` prints
every row with every column, for scripts.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

_BORDER = 3  # a column's padding and its border: "│ x " is the cell's width plus three


@dataclass(frozen=True)
class Column:
    name: str
    whole: bool = False  # an id or a name a user copies: printed in full or not at all
    optional: bool = False  # dropped, last first, when the terminal is too narrow


def print_rows(
    console: Console, columns: Sequence[Column], rows: Sequence[Sequence[str]]
) -> None:
    shown = _fitting(console.width, columns, rows)
    if shown is None:
        _print_records(console, columns, rows)
        return
    table = Table()
    for index in shown:
        column = columns[index]
        width = _width(index, columns, rows)
        if column.whole:
            table.add_column(column.name, no_wrap=True, min_width=width)
        else:
            table.add_column(column.name, overflow="fold")
    for row in rows:
        table.add_row(*(escape(row[index]) for index in shown))
    console.print(table)


def print_json(console: Console, items: Any) -> None:
    """JSON on stdout, as it is (no colours, no wrapping)."""
    console.file.write(json.dumps(items, indent=2, ensure_ascii=False) + "\n")


def _width(index: int, columns: Sequence[Column], rows: Sequence[Sequence[str]]) -> int:
    return max([len(columns[index].name), *(len(row[index]) for row in rows)])


def _needed(shown: list[int], columns: Sequence[Column], rows: Sequence[Sequence[str]]) -> int:
    return 1 + sum(_width(i, columns, rows) + _BORDER for i in shown)


def _fitting(
    width: int, columns: Sequence[Column], rows: Sequence[Sequence[str]]
) -> list[int] | None:
    """The columns to show, or None when even the whole ones do not fit."""
    shown = list(range(len(columns)))
    for index in reversed(range(len(columns))):
        if _needed(shown, columns, rows) <= width:
            return shown
        if columns[index].optional:
            shown.remove(index)
    whole = [i for i in shown if columns[i].whole]
    folded = len(shown) - len(whole)  # each at least a few characters, folded
    room = 1 + sum(_width(i, columns, rows) + _BORDER for i in whole) + folded * (4 + _BORDER)
    return shown if room <= width else None


def _print_records(
    console: Console, columns: Sequence[Column], rows: Sequence[Sequence[str]]
) -> None:
    label = max(len(column.name) for column in columns)
    for number, row in enumerate(rows):
        if number:
            console.print()
        for column, value in zip(columns, row, strict=True):
            console.print(f"{column.name:<{label}}  {escape(value)}", soft_wrap=True)
