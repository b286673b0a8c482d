"""How one engine is built, and the checks each engine family makes of its options.

The catalog reads ``[engines.<name>]`` tables into ``EngineConfig`` and calls
``check_engine_config`` on each, so a mistake in a model's options stops the catalog from
loading, naming the engine and the field. Each family owns its checks (``diffusion.checks``,
``upstream.config``); the catalog imports this module, never the reverse.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kinema.engines.diffusion import MODEL_FILES

DIFFUSION_KINDS = frozenset(MODEL_FILES)  # the kinds served by the diffusers engines


@dataclass(frozen=True)
class EngineConfig:
    """How to build one engine: its implementation kind, frame rate and options."""

    name: str
    kind: str
    fps: int
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def upstream_options(self) -> dict[str, Any]:
        """The options of a forwarding engine, with the served model's frame rate (``fps``,
        which the catalog keeps beside ``kind``): the GPU servers' protocols need it."""
        return {**self.options, "fps": self.fps}

    @property
    def forwards(self) -> bool:
        """Whether this engine forwards jobs to a provider instead of rendering frames."""
        return self.kind == "upstream"


def check_engine_config(config: EngineConfig, *, hub_offline: bool = False) -> None:
    """Check ``config``'s options against its family's rules; ``ValueError`` (or
    ``EngineError``) names the engine and the field at fault. ``hub_offline`` (the
    settings' ``hf_hub_offline``) refuses what would download from the Hugging Face hub."""
    if config.kind in DIFFUSION_KINDS:
        from kinema.engines.diffusion.checks import check_engine_options

        check_engine_options(config.kind, config.name, config.options, hub_offline=hub_offline)
    elif config.forwards:
        from kinema.engines.upstream.config import UpstreamConfig

        UpstreamConfig.from_options(config.name, config.upstream_options)
