"""Reading the parts of a create that come as loose JSON: ``input``'s content items (text,
images, videos; the shapes both SDKs and raw callers send) and ``response_format``'s video
entry. Each problem is a 400 that names the field by its wire path."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from kinema.api.dialects import google
from kinema.errors import InvalidRequest
from kinema.jobs.keys import output_of_video_key
from kinema.types import output_ref

_DURATION = re.compile(r"([0-9]{1,3})(?:\.0+)?s?")


@dataclass
class Content:
    """The content items of ``input``, by kind, each with its wire path."""

    texts: list[str] = field(default_factory=list)
    images: list[tuple[str, str]] = field(default_factory=list)  # (source, path)
    videos: list[tuple[dict[str, Any], str]] = field(default_factory=list)


def read_input(value: Any) -> Content:
    """``input`` as the Python SDK (``user_input`` turns), the JS SDK (a flat list of
    items) or a raw caller (a string, one item or one turn) sends it."""
    content = Content()
    if value is None:
        return content
    if isinstance(value, str):
        content.texts.append(value)
        return content
    items = [value] if isinstance(value, dict) else value
    for i, item in enumerate(items):
        path = f"input[{i}]"
        if isinstance(item, dict) and item.get("type") == "user_input":
            turn = item.get("content")
            if isinstance(turn, str):
                content.texts.append(turn)
                continue
            if not isinstance(turn, list):
                raise InvalidRequest.for_field(f"{path}.content", "must be a list of items")
            for j, inner in enumerate(turn):
                _read_item(inner, f"{path}.content[{j}]", content)
        else:
            _read_item(item, path, content)
    return content


def _read_item(item: Any, path: str, content: Content) -> None:
    if isinstance(item, str):
        content.texts.append(item)
        return
    if not isinstance(item, dict):
        raise InvalidRequest.for_field(path, "must be a content item: {type, ...}")
    kind = item.get("type", "text" if "text" in item else None)
    if kind == "text":
        text = item.get("text")
        if not isinstance(text, str):
            raise InvalidRequest.for_field(f"{path}.text", "must be a string")
        content.texts.append(text)
    elif kind == "image":
        content.images.append((_image_source(item, path), path))
    elif kind == "video":
        content.videos.append((item, path))
    else:
        raise InvalidRequest.for_field(
            f"{path}.type", f"{str(kind)[:40]!r} is not served: send text, image or video items"
        )


def _image_source(item: dict[str, Any], path: str) -> str:
    """An image item as a source the shared intake reads: a data URI or an http(s) URL."""
    data, uri = item.get("data"), item.get("uri")
    if isinstance(data, str) and data:
        mime = item.get("mime_type")
        kind = mime if isinstance(mime, str) and mime.startswith("image/") else "image/png"
        return f"data:{kind};base64,{data}"
    if isinstance(uri, str) and uri.startswith(("http://", "https://")):
        return uri
    if uri is not None:
        raise InvalidRequest.for_field(
            f"{path}.uri", "only http(s) image URIs are fetched: send the image as data"
        )
    raise InvalidRequest.for_field(f"{path}.data", "an image item needs data or a uri")


def video_source(item: dict[str, Any], path: str) -> str:
    """A video item: a ``job:`` reference for the uri of a video this server made (its
    signed link), else the video inline as a data URI."""
    uri, data = item.get("uri"), item.get("data")
    if isinstance(data, str) and data:
        return google.inline_video(data, item.get("mime_type"), f"{path}.data")
    if isinstance(uri, str):
        key = unquote(urlsplit(uri).path).partition("/files/")[2]
        output = output_of_video_key(key) if key else None
        if output is not None:
            return output_ref(*output)
        raise InvalidRequest.for_field(
            f"{path}.uri", "only the uri of a video this server made is read: send data"
        )
    raise InvalidRequest.for_field(f"{path}.data", "a video item needs data or a uri")


def video_format(value: Any) -> dict[str, Any]:
    """The ``video`` entry of ``response_format`` (an object or a list); {} for none."""
    formats = value if isinstance(value, list) else [value]
    chosen: dict[str, Any] = {}
    for i, entry in enumerate(formats):
        path = "response_format" if not isinstance(value, list) else f"response_format[{i}]"
        if entry is None:
            continue
        if not isinstance(entry, dict) or entry.get("type") != "video":
            raise InvalidRequest.for_field(
                f"{path}.type", "only video output is served by this model"
            )
        unknown = sorted(
            set(entry) - {"type", "aspect_ratio", "resolution", "duration", "delivery", "gcs_uri"}
        )
        if unknown:
            raise InvalidRequest.for_field(f"{path}.{unknown[0]}", "is not a video format field")
        chosen = entry
    return chosen


def duration_field(value: Any) -> Any:
    """``"8"``, ``"8s"`` or 8 as whole seconds; anything else as sent (the catalog says
    what is wrong with it)."""
    if isinstance(value, str):
        match = _DURATION.fullmatch(value.strip())
        return int(match[1]) if match else value
    return value
