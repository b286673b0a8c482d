"""Every wire protocol of the upstream engine by name (``protocol = "..."`` in the catalog)."""

from __future__ import annotations

from kinema.engines.upstream.aimlapi import AimlapiProtocol
from kinema.engines.upstream.gemini import GeminiProtocol
from kinema.engines.upstream.openai import OpenAIProtocol
from kinema.engines.upstream.protocol import PROTOCOLS, Protocol
from kinema.engines.upstream.sglang import SGLangProtocol
from kinema.engines.upstream.unified import UnifiedProtocol
from kinema.engines.upstream.v1 import V1Protocol
from kinema.engines.upstream.vertex import VertexProtocol
from kinema.engines.upstream.vllm_omni import VllmOmniProtocol

_PROTOCOL_TYPES: dict[str, type[Protocol]] = {
    protocol.name: protocol
    for protocol in (
        GeminiProtocol,
        VertexProtocol,
        AimlapiProtocol,
        OpenAIProtocol,
        UnifiedProtocol,
        V1Protocol,
        VllmOmniProtocol,
        SGLangProtocol,
    )
}
assert tuple(_PROTOCOL_TYPES) == PROTOCOLS


def protocol_type(name: str) -> type[Protocol]:
    """The protocol class of ``name`` (one of ``PROTOCOLS``)."""
    return _PROTOCOL_TYPES[name]
