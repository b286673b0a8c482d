"""The wire APIs this server speaks: a new one is a module and an entry here."""

from __future__ import annotations

from kinema.api.aimlapi import AimlApi
from kinema.api.dialect import Dialect
from kinema.api.files import Files
from kinema.api.gemini import Gemini
from kinema.api.openai_videos import OpenAIVideos
from kinema.api.unified import UnifiedTasks
from kinema.api.v1_generations import VideoGenerations
from kinema.api.vertex import Vertex


def dialects() -> list[Dialect]:
    return [
        AimlApi(),
        Gemini(),
        Vertex(),
        OpenAIVideos(),
        UnifiedTasks(),
        VideoGenerations(),
        Files(),
    ]
