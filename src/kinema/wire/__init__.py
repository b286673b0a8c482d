"""One wire table per API: its paths, status words, field names, ids and status object.

Each module is what the server dialect (``kinema.api.dialects``), the upstream protocol
that forwards to a server of that API (``kinema.engines.upstream``) and, for the AI/ML
API, the Python client (``kinema.client``) share, so none of them writes a path, a word
or a field name again. Nothing here needs a web framework: a worker renders webhook
bodies with ``STATUS_OBJECTS`` alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from kinema.wire import aimlapi, gemini, openai_videos, unified, v1_generations, vertex

if TYPE_CHECKING:
    from kinema.views import JobView


class StatusObject(NamedTuple):
    """How an API renders a job: ``render`` builds its status object from a view;
    ``inline_video`` says the object carries the MP4 itself (an ``InlineFile``)."""

    render: Callable[[JobView], dict[str, Any]]
    inline_video: bool


# dialect name -> its status object, as create, poll and webhook bodies carry it
STATUS_OBJECTS: Mapping[str, StatusObject] = {
    api.NAME: StatusObject(api.render, api.INLINE_VIDEO)
    for api in (aimlapi, gemini, vertex, openai_videos, unified, v1_generations)
}

__all__ = ["STATUS_OBJECTS", "StatusObject"]
