"""A create translated into kinema's terms: the task it asks for
(``generation_config.video_config.task``, or the one its inputs imply) as a new job or one
made from an earlier video, with its media placed; its shape, webhook and labels; and the
refusal, by name, of what a video model does not serve. The rules are the package
docstring's "Tasks"."""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from typing import Any

from kinema.api.dialects.interactions.bodies import (
    TASKS,
    CreateInteraction,
    GenerationConfig,
    VideoConfig,
)
from kinema.api.dialects.interactions.inputs import (
    Content,
    duration_field,
    read_input,
    video_format,
    video_source,
)
from kinema.errors import InvalidRequest, NotFound, UnknownModel
from kinema.service import JobService
from kinema.types import SourceKind, output_ref
from kinema.views import Creation
from kinema.wire import interactions as wire

_HEX32 = re.compile(r"[0-9a-f]{32}")
# Fields of a create that make sense for text or agents, not for a video: refused by name.
_UNSERVED = (
    "agent",
    "agent_config",
    "cached_content",
    "continuation_token",
    "environment",
    "system_instruction",
    "tools",
    "response_modalities",
    "response_mime_type",
    "safety_settings",
)
_UNSERVED_CONFIG = (
    "image_config",
    "max_output_tokens",
    "speech_config",
    "stop_sequences",
    "temperature",
    "thinking_level",
    "thinking_summaries",
    "tool_choice",
    "top_p",
    "transcription_config",
)
WIRE_NAMES = {
    "prompt": "input",
    "image": "input",
    "reference_images": "input",
    "video": "input",
    "duration": "response_format.duration",
    "aspect_ratio": "response_format.aspect_ratio",
    "resolution": "response_format.resolution",
    "seed": "generation_config.seed",
}


@dataclass(frozen=True)
class Plan:
    """What a create asks kinema to do: a new video, or one made from an earlier one."""

    creation: Creation
    derived: tuple[str, SourceKind] | None = None  # (source ``job:`` ref, kind): a remix


def plan(service: JobService, body: CreateInteraction, idempotency_key: str | None) -> Plan:
    _refuse_unserved(body)
    model = _model(service, body.model)
    content = read_input(body.input)
    config = body.generation_config or GenerationConfig()
    task = (config.video_config or VideoConfig()).task
    if task is not None and task not in TASKS:
        raise InvalidRequest.for_field(
            "generation_config.video_config.task", f"must be one of {', '.join(TASKS)}"
        )
    if task == "upscale":
        raise InvalidRequest.for_field(
            "generation_config.video_config.task", "upscale is not served by this server"
        )
    shape = video_format(body.response_format)
    fields: dict[str, Any] = {}
    if content.texts:
        fields["prompt"] = "\n".join(content.texts)
    for name in ("aspect_ratio", "resolution"):
        if shape.get(name) is not None:
            fields[name] = shape[name]
    if shape.get("duration") is not None:
        fields["duration"] = duration_field(shape["duration"])
    if config.seed is not None:
        fields["seed"] = config.seed
    delivery = shape.get("delivery", "inline")
    if delivery not in ("inline", "uri"):
        raise InvalidRequest.for_field("response_format.delivery", "must be inline or uri")
    storage_uri = _storage_uri(service, shape.get("gcs_uri"))
    callback, echo = _webhook(body)
    echo["delivery"] = delivery
    if body.labels is not None:
        _check_json(body.labels, "labels")
        echo["labels"] = dict(body.labels)
    previous = body.previous_interaction_id
    if previous is not None:
        echo["previous_interaction_id"] = previous
    if body.input is not None:
        echo["input"] = wire.input_skeleton(body.input)
    creation = Creation(
        model=model,
        fields=fields,
        wire_names=WIRE_NAMES,
        callback_url=callback,
        callback_field="webhook_config.uris[0]",
        idempotency_key=idempotency_key,
        storage_uri=storage_uri,
        echo=echo,
    )
    return _task(creation, content, task, previous)


def _task(creation: Creation, content: Content, task: str | None, previous: str | None) -> Plan:
    """The plan for ``task`` (or the one the inputs imply), with the media placed."""
    fields = dict(creation.fields)
    names = dict(WIRE_NAMES)
    source = None
    if previous is not None:
        source = output_ref(checked_id(previous, "previous_interaction_id"))
        names["video"] = names["image"] = "previous_interaction_id"
    elif content.videos:
        item, path = content.videos[0]
        source = video_source(item, path)
        names["video"] = names["image"] = path
    if len(content.videos) > 1 or (content.videos and previous is not None):
        raise InvalidRequest.for_field("input", "takes one video (or previous_interaction_id)")
    if task is None:
        task = _implied_task(content, source)
    images = [image for image, _ in content.images]
    if task in ("edit", "extend", "refine"):
        if source is None:
            raise InvalidRequest.for_field(
                "input", f"{task} needs a video: previous_interaction_id or a video item"
            )
        if images:
            raise InvalidRequest.for_field(
                content.images[0][1], f"{task} takes no images, only the video"
            )
        if task == "extend":
            fields["video"] = source
            return Plan(_replace(creation, fields, names))
        kind: SourceKind = "edit" if task == "edit" else "remix"
        if not source.startswith("job:"):  # an uploaded video: its picture, re-filmed
            fields["image"] = source
            return Plan(_replace(creation, fields, names))
        return Plan(_replace(creation, fields, names), derived=(source, kind))
    if source is not None:
        raise InvalidRequest.for_field(
            names["video"], f"{task} takes no video: use task edit or extend"
        )
    if task == "text_to_video" and images:
        raise InvalidRequest.for_field(content.images[0][1], "text_to_video takes no images")
    if task == "image_to_video":
        if len(images) != 1:
            raise InvalidRequest.for_field("input", "image_to_video takes one image")
        fields["image"] = images[0]
    elif task == "reference_to_video":
        if not images:
            raise InvalidRequest.for_field("input", "reference_to_video needs images")
        fields["reference_images"] = images
    return Plan(_replace(creation, fields, names))


def _model(service: JobService, model: str) -> str:
    name = model.removeprefix("models/")
    try:
        return service.catalog.get(name, dialect=wire.NAME).id
    except UnknownModel:
        served = ", ".join(service.catalog.model_ids(wire.NAME))
        raise NotFound(
            f"model {name[:100]!r} is not found for the Interactions API; this server "
            f"serves: {served}"
        ) from None


def _storage_uri(service: JobService, uri: Any) -> str | None:
    if uri is None:
        return None
    if not isinstance(uri, str):
        raise InvalidRequest.for_field("response_format.gcs_uri", "must be a string")
    try:
        service.check_storage_uri(uri)
    except InvalidRequest as error:
        raise InvalidRequest.for_field("response_format.gcs_uri", error.message) from None
    return uri


def _webhook(body: CreateInteraction) -> tuple[str | None, dict[str, Any]]:
    """The webhook URL and what is echoed of ``webhook_config``."""
    config = body.webhook_config
    if config is None:
        return None, {}
    echo: dict[str, Any] = {}
    if config.user_metadata is not None:
        _check_json(config.user_metadata, "webhook_config.user_metadata")
        echo["user_metadata"] = config.user_metadata
    if not config.uris:
        return None, echo
    if len(config.uris) != 1:
        raise InvalidRequest.for_field("webhook_config.uris", "takes exactly one URI")
    return config.uris[0], echo


def _implied_task(content: Content, source: str | None) -> str:
    """The task a create without ``video_config.task`` asks for, from what it sends."""
    if source is not None:
        return "refine" if source.startswith("job:") else "edit"
    if len(content.images) > 1:
        return "reference_to_video"
    if content.images:
        return "image_to_video"
    return "text_to_video"


def _replace(creation: Creation, fields: dict[str, Any], names: dict[str, str]) -> Creation:
    return dataclasses.replace(creation, fields=fields, wire_names=names)


def _refuse_unserved(body: CreateInteraction) -> None:
    extra = body.model_extra or {}
    for name in _UNSERVED:
        if extra.get(name) is not None:
            raise InvalidRequest.for_field(name, "is not served: this server makes video only")
    unknown = sorted(name for name in extra if name not in _UNSERVED and name != "service_tier")
    if unknown:
        raise InvalidRequest.for_field(unknown[0][:60], "is not a field of an interaction")
    config = body.generation_config
    for name in sorted((config.model_extra or {}) if config is not None else {}):
        where = f"generation_config.{name[:60]}"
        if name in _UNSERVED_CONFIG:
            raise InvalidRequest.for_field(where, "is not served for video")
        raise InvalidRequest.for_field(where, "is not a field of generation_config")


def _check_json(value: Any, where: str) -> None:
    """Refuse what the job could not keep: more than 16 KiB, or a lone surrogate."""
    try:
        text = json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidRequest.for_field(where, "is not valid Unicode (a lone surrogate)") from None
    except (TypeError, ValueError, RecursionError):
        raise InvalidRequest.for_field(where, "must be JSON") from None
    if len(text) > 16_384:
        raise InvalidRequest.for_field(where, "is larger than 16 KiB")


def checked_id(value: str, where: str) -> str:
    """``value`` as a job id, or a 404 for what cannot be one (as for another key's)."""
    if not _HEX32.fullmatch(value):
        if where == "id":
            raise NotFound(f"interaction {value[:80]!r} is not found")
        raise NotFound(f"{where}: interaction {value[:80]!r} is not found")
    return value
