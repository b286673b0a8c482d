"""The value parsers of ``Catalog.build_request``: each returns the parsed value of one
field, or records a problem under the field's wire name and returns None."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, cast

from kinema.catalog_models import ModelSpec
from kinema.errors import FieldProblem

# Whole numbers as strings: ASCII digits only (``str.isdigit`` also takes "²" and a fullwidth "4",
# which ``int`` refuses or reads differently), and few enough to mean anything.
_WHOLE_NUMBER = re.compile(r"[+-]?[0-9]{1,18}")
SURROGATE = "is not valid Unicode (it holds an unpaired surrogate escape such as \\ud800)"


def wire_name(names: Mapping[str, str], canonical: str) -> str:
    return names.get(canonical, canonical)


class Problems:
    """Collects every problem of a request so the client sees them all at once."""

    def __init__(self, names: Mapping[str, str]) -> None:
        self.names = names
        self.items: list[FieldProblem] = []
        self.seen: set[str] = set()

    def add(self, canonical: str, message: str) -> None:
        if canonical in self.seen:  # one problem per field: the first says what is wrong
            return
        self.seen.add(canonical)
        self.items.append(FieldProblem((wire_name(self.names, canonical),), message))


def has_surrogate(value: Any, depth: int = 0) -> bool:
    """Whether ``value`` holds a string with a lone surrogate, which cannot be stored or
    sent back as UTF-8 (JSON lets a client write one as ``"\\ud800"``)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if depth > 8:
        return False
    if isinstance(value, list | tuple):
        return any(has_surrogate(item, depth + 1) for item in value)
    if isinstance(value, dict):
        return any(has_surrogate(item, depth + 1) for pair in value.items() for item in pair)
    return False


def parse_text(
    value: Any, name: str, problems: Problems, *, required: bool = False, empty: bool = True
) -> str | None:
    """A string field; ``empty=False`` refuses a blank string even when the field is
    optional (an image given as "" is a mistake, not a request without an image)."""
    if value is None:
        if required:
            problems.add(name, "is required")
        return None
    if not isinstance(value, str):
        problems.add(name, f"must be a string, not {type(value).__name__}")
        return None
    if (required or not empty) and not value.strip():
        problems.add(name, "must not be empty")
        return None
    return value


def parse_references(value: Any, limit: int, problems: Problems) -> tuple[str, ...]:
    if value is None:
        problems.add("reference_images", "is required")
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        problems.add("reference_images", "must be a list of image URLs or base64 images")
        return ()
    if not 1 <= len(value) <= limit:
        problems.add(
            "reference_images", f"takes 1 to {limit} images (the model's limit), not {len(value)}"
        )
        return ()
    return tuple(value)


def parse_choice(
    value: Any,
    allowed: tuple[str, ...],
    default: str,
    name: str,
    problems: Problems,
    normalise: Any = None,
) -> str | None:
    if value is None:
        return default
    if not isinstance(value, str):
        problems.add(name, f"must be one of {', '.join(allowed)}")
        return None
    key = normalise(value) if normalise else value
    if key not in allowed:
        problems.add(name, f"{value!r} is not one of {', '.join(allowed)}")
        return None
    return cast(str, key)


def parse_duration(
    value: Any,
    allowed: tuple[int, ...],
    spec: ModelSpec,
    problems: Problems,
    resolution: str | None,
) -> int | None:
    if value is None:
        return spec.default_duration if spec.default_duration in allowed else allowed[-1]
    seconds: int | None = None
    if isinstance(value, bool):
        seconds = None
    elif isinstance(value, int):
        seconds = value
    elif isinstance(value, float) and value.is_integer():
        seconds = int(value)
    elif isinstance(value, str) and _WHOLE_NUMBER.fullmatch(value.strip().removesuffix("s")):
        seconds = int(value.strip().removesuffix("s"))
    options = ", ".join(map(str, allowed))
    if seconds is None or seconds not in allowed:
        where = f" at {resolution}" if allowed != spec.durations else ""
        problems.add("duration", f"{value!r} is not an allowed duration{where}: {options} seconds")
        return None
    return seconds


def fitted_duration(
    value: Any,
    allowed: tuple[int, ...],
    spec: ModelSpec,
    problems: Problems,
    adjusted: list[dict[str, Any]],
) -> int | None:
    """The next longer allowed duration for a whole number of seconds between two allowed
    ones (so a video is never shorter than asked), recorded in ``adjusted``; the problem
    ``parse_duration`` recorded is withdrawn. Anything else stays refused."""
    text = str(value).strip().removesuffix("s")
    if isinstance(value, bool) or not text.isdigit():
        return None
    seconds = int(text)
    longer = [d for d in allowed if d >= seconds]
    if seconds < min(allowed) or not longer:
        return None
    used = longer[0]
    problems.items.pop()
    adjusted.append(
        {
            "field": wire_name(problems.names, "duration"),
            "requested": value,
            "used": used,
            "reason": f"model {spec.id} makes {', '.join(map(str, allowed))} second videos; "
            f"{seconds} s is made as the next longer one",
        }
    )
    return used


def parse_flag(value: Any, default: bool | None, name: str, problems: Problems) -> bool | None:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    problems.add(name, "must be true or false")
    return None


def parse_integer(value: Any, low: int, high: int, name: str, problems: Problems) -> int | None:
    if value is None:
        return None
    if isinstance(value, str) and _WHOLE_NUMBER.fullmatch(value.strip()):
        number = int(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        problems.add(name, f"must be an integer from {low} to {high}")
        return None
    if not low <= number <= high:
        problems.add(name, f"{number} is outside {low} .. {high}")
        return None
    return number
