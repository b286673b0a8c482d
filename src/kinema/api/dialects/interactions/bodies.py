"""The Interactions API's request and answer bodies, as pydantic reads a create and OpenAPI
shows both. Only their shape is checked here; what the fields mean is ``creation``'s."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt

TASKS = ("text_to_video", "image_to_video", "reference_to_video", "edit", "extend", "upscale")


class VideoConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task: str | None = Field(default=None, examples=list(TASKS))


class GenerationConfig(BaseModel):
    model_config = ConfigDict(extra="allow")

    seed: StrictInt | None = None
    video_config: VideoConfig | None = None


class InteractionWebhookConfig(BaseModel):
    # Not ``WebhookConfig``: Gemini's dialect has one, and two models of one name make
    # OpenAPI name both after their modules.
    model_config = ConfigDict(extra="forbid")

    uris: list[str] | None = Field(default=None, description="One URI: it gets a signed webhook")
    user_metadata: dict[str, Any] | None = Field(
        default=None, description="Returned in the webhook's body"
    )


class CreateInteraction(BaseModel):
    """A create, as the SDKs send it (the video subset; other fields are refused)."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(examples=["gemini-omni-1.2-flash"])
    input: str | list[Any] | dict[str, Any] | None = Field(
        default=None,
        description="A string, a list of content items ({type: text|image|video}), or "
        "user_input turns holding them",
    )
    background: bool | None = None
    stream: bool | None = None
    store: bool | None = None
    response_format: dict[str, Any] | list[Any] | None = Field(
        default=None,
        examples=[{"type": "video", "aspect_ratio": "16:9", "resolution": "720p"}],
    )
    generation_config: GenerationConfig | None = None
    previous_interaction_id: str | None = None
    webhook_config: InteractionWebhookConfig | None = None
    labels: dict[str, str] | None = None


class Interaction(BaseModel):
    id: str
    object: str = "interaction"
    status: str = Field(examples=["queued", "in_progress", "completed", "failed", "cancelled"])
    model: str | None = None
    created: str | None = None
    updated: str | None = None
    steps: list[dict[str, Any]] | None = None
    previous_interaction_id: str | None = None
    labels: dict[str, str] | None = None
    input: str | list[Any] | dict[str, Any] | None = Field(
        default=None, description="The create's input, with include_input=true"
    )
    errors: list[dict[str, Any]] | None = None
    adjustments: list[dict[str, Any]] | None = Field(
        default=None, description="kinema extension: what was changed to serve the request"
    )
