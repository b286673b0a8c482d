"""Checks of a catalog file's tables before they are read, naming the table and the field.

``Catalog.from_dict`` calls ``check_catalog`` first, so a mistake in an operator's copy of
the catalog stops the server (and every command that reads the catalog) with one line such
as ``[models."my-model"] durations: must be a list of whole numbers, got "8"`` instead of
a ``KeyError`` from deep inside the loader.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

INPUT_KINDS = ("text", "image", "first_last", "reference", "any")

# Every field a model table may hold; the loader reads no other.
MODEL_FIELDS = frozenset(
    {
        "dialect", "dialects", "engine", "engines", "description", "inputs", "durations",
        "default_duration", "aspect_ratios", "resolutions", "default_resolution", "audio",
        "default_audio", "options", "last_image", "durations_at", "sizes", "samples",
        "extension", "fit_duration", "person_generation", "reference_images",
    }
)  # fmt: skip
ALIAS_FIELDS = frozenset({"of", "dialects", "note"})
_REQUIRED = ("inputs", "durations", "default_duration", "aspect_ratios", "resolutions")


class CatalogError(ValueError):
    """A catalog that cannot be loaded; ``table`` and ``field`` say where (either may be
    empty for a file that is not TOML at all)."""

    def __init__(self, table: str, field: str, problem: str) -> None:
        where = f"[{table}] {field}".strip() if table else field
        super().__init__(f"{where}: {problem}" if where else problem)
        self.table = table
        self.field = field
        self.problem = problem


def read_catalog_file(path: Path) -> dict[str, Any]:
    """Parse a catalog file; a missing file or bad TOML is a ``CatalogError`` naming it."""
    try:
        text = path.read_text("utf-8")
    except OSError as error:
        raise CatalogError("", "", f"cannot read catalog {path}: {error.strerror}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise CatalogError("", "", f"catalog {path} is not valid TOML: {error}") from None


def model_table(model_id: str) -> str:
    return f'models."{model_id}"'


def unknown_model_fields(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(table, field) of every model field the loader ignores: most likely a typo."""
    return [
        (model_table(model_id), name)
        for model_id, cfg in _tables(data, "models").items()
        for name in cfg
        if name not in MODEL_FIELDS
    ]


def check_catalog(data: Mapping[str, Any]) -> None:
    """Raise ``CatalogError`` for the first table that the loader could not read."""
    engines = _tables(data, "engines")
    for name, cfg in engines.items():
        table = f"engines.{name}"
        _field(cfg, table, "kind", _is_text, "must be a string", required=False)
        _field(cfg, table, "fps", _is_positive_int, "must be a whole number above 0", False)
    models = _tables(data, "models")
    for model_id, cfg in models.items():
        _check_model(model_id, cfg, set(engines))
    for alias, cfg in _tables(data, "aliases").items():
        _check_alias(alias, cfg, set(models))


def _check_alias(alias: str, cfg: dict[str, Any], models: set[str]) -> None:
    table = f'aliases."{alias}"'
    unknown = sorted(set(cfg) - ALIAS_FIELDS)
    if unknown:
        raise CatalogError(table, unknown[0], "is not a field of an alias (of, dialects, note)")
    if cfg.get("of") not in models:
        shown = _shown(cfg.get("of"))
        raise CatalogError(table, "of", f"must name a model of the catalog, got {shown}")
    _field(cfg, table, "dialects", _is_text_list, "must be a non-empty list of strings")
    _field(cfg, table, "note", _is_text, "must be a string")


def _tables(data: Mapping[str, Any], name: str) -> dict[str, dict[str, Any]]:
    section = data.get(name, {})
    if not isinstance(section, dict):
        raise CatalogError(name, "", "must be a table of tables")
    for key, value in section.items():
        if not isinstance(value, dict):
            raise CatalogError(f"{name}.{key}", "", "must be a table")
    return section


def _check_model(model_id: str, cfg: dict[str, Any], engines: set[str]) -> None:
    table = model_table(model_id)
    for name in _REQUIRED:
        if name not in cfg:
            raise CatalogError(table, name, "is missing")
    if "dialect" not in cfg and "dialects" not in cfg:
        raise CatalogError(table, "dialect", "is missing (or give dialects = [...])")
    if "engine" not in cfg and "engines" not in cfg:
        raise CatalogError(table, "engine", "is missing")
    _field(cfg, table, "dialect", _is_text, "must be a string")
    _field(cfg, table, "dialects", _is_text_list, "must be a non-empty list of strings")
    chain_field = "engine" if "engine" in cfg else "engines"
    chain = cfg[chain_field]
    chain = [chain] if isinstance(chain, str) else chain
    if not _is_text_list(chain):
        raise CatalogError(table, chain_field, "must name an engine or a list of engines")
    for engine in chain:
        if engine not in engines:
            known = ", ".join(sorted(engines)) or "none"
            raise CatalogError(table, chain_field, f"names unknown engine {engine!r} ({known})")
    _field(cfg, table, "inputs", lambda v: v in INPUT_KINDS, f"must be one of {INPUT_KINDS}")
    _field(cfg, table, "durations", _is_int_list, "must be a list of whole numbers")
    _field(cfg, table, "default_duration", _is_positive_int, "must be a whole number above 0")
    _field(cfg, table, "aspect_ratios", _is_text_list, "must be a list of strings")
    _field(cfg, table, "resolutions", _is_text_list, "must be a list of strings")
    _field(cfg, table, "default_resolution", _is_text, "must be a string")
    for flag in ("audio", "default_audio", "fit_duration"):
        _field(cfg, table, flag, lambda v: isinstance(v, bool), "must be true or false")
    for listed in ("options", "sizes", "person_generation"):
        _field(cfg, table, listed, _is_text_list_or_empty, "must be a list of strings")
    _field(cfg, table, "samples", _is_positive_int, "must be a whole number above 0")
    _field(cfg, table, "description", _is_text, "must be a string")
    _field(cfg, table, "last_image", lambda v: v == "optional", 'must be "optional"')
    _field(cfg, table, "durations_at", _is_durations_at, "must map resolutions to lists")
    _field(
        cfg,
        table,
        "extension",
        _is_extension,
        "must be { max_input_s, max_output_s } (and durations, a list of whole numbers)",
    )
    _field(cfg, table, "reference_images", _is_positive_int, "must be a whole number above 0")
    if cfg["default_duration"] not in cfg["durations"]:
        raise CatalogError(
            table, "default_duration", f"{cfg['default_duration']} is not one of durations"
        )


def _field(
    cfg: Mapping[str, Any],
    table: str,
    name: str,
    valid: Callable[[Any], bool],
    problem: str,
    required: bool = False,
) -> None:
    if name not in cfg:
        if required:
            raise CatalogError(table, name, "is missing")
        return
    value = cfg[name]
    if not valid(value):
        raise CatalogError(table, name, f"{problem}, got {_shown(value)}")


def _shown(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else f'"{value}"'
    return text if len(text) <= 60 else text[:57] + "..."


def _is_text(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


def _is_text_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(_is_text(v) for v in value)


def _is_text_list_or_empty(value: Any) -> bool:
    return isinstance(value, list) and all(_is_text(v) for v in value)


def _is_positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _is_int_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(_is_positive_int(v) for v in value)


def _is_durations_at(value: Any) -> bool:
    return isinstance(value, dict) and all(_is_int_list(v) for v in value.values())


def _is_extension(value: Any) -> bool:
    if not isinstance(value, dict) or not {"max_input_s", "max_output_s"} <= set(value):
        return False
    if not set(value) <= {"max_input_s", "max_output_s", "durations"}:
        return False
    if "durations" in value and not _is_int_list(value["durations"]):
        return False
    limits = (value["max_input_s"], value["max_output_s"])
    return all(isinstance(v, int | float) and not isinstance(v, bool) for v in limits)
