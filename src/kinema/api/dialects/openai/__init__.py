"""The OpenAI-style ``/v1/videos`` API: creation, polling and content (``videos``), and the
videos made from other videos, extensions, remixes and edits (``derived``)."""

from kinema.api.dialects.openai.videos import OpenAIVideos

__all__ = ["OpenAIVideos"]
