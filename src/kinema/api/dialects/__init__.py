"""The wire APIs this server speaks: a new one is a wire table (``kinema.wire``), a module
here and an entry in ``dialects()``."""

from __future__ import annotations

from kinema.api.dialect import Dialect
from kinema.api.dialects.aimlapi import AimlApi
from kinema.api.dialects.gemini import Gemini
from kinema.api.dialects.openai.videos import OpenAIVideos
from kinema.api.dialects.unified import UnifiedTasks
from kinema.api.dialects.v1_generations import VideoGenerations
from kinema.api.dialects.vertex import Vertex


def dialects() -> list[Dialect]:
    return [
        AimlApi(),
        Gemini(),
        Vertex(),
        OpenAIVideos(),
        UnifiedTasks(),
        VideoGenerations(),
    ]
