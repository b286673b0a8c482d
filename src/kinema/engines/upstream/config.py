"""One ``[engines.X] kind = "upstream"`` entry of the catalog, read and checked."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from kinema.engines.upstream.protocol import PROTOCOLS
from kinema.engines.upstream.protocols import protocol_type

# Catalog keys of an upstream engine; anything else goes to the protocol (api_version,
# project, location, create_path, ...).
_ENGINE_KEYS = frozenset(
    {
        "protocol",
        "base_url",
        "api_key_env",
        "model",
        "max_in_flight",
        "deadline_s",
        "poll_s",
        "request_timeout_s",
        "max_retries",
        "backoff_s",
        "max_backoff_s",
        "max_video_bytes",
        "download_timeout_s",
        "allow_hosts",
    }
)


@dataclass(frozen=True)
class UpstreamConfig:
    """One ``[engines.X] kind = "upstream"`` entry of the catalog."""

    name: str
    protocol: str
    base_url: str
    api_key_env: str | None = None  # the variable holding the key; the key never sits here
    model: str | None = None  # the provider's model id; default: the job's own model id
    max_in_flight: int = 4  # jobs submitted there and not finished, across all workers
    deadline_s: float = 1800.0  # from submission to a downloaded video
    poll_s: float = 5.0
    request_timeout_s: float = 30.0
    max_retries: int = 5  # retryable failures of one call in a row before giving up there
    backoff_s: float = 1.0
    max_backoff_s: float = 60.0
    max_video_bytes: int = 512 * 2**20
    download_timeout_s: float = 600.0  # the whole download, redirects included
    allow_hosts: tuple[str, ...] = ()  # more hosts its video links may point to (private ones)
    protocol_options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_options(cls, name: str, options: Mapping[str, Any]) -> UpstreamConfig:
        """Read and check the catalog entry; ``ValueError`` names the field at fault."""
        where = f"engine {name!r}"
        if "api_key" in options:
            raise ValueError(
                f"{where}: put the key in an environment variable and name it in "
                "'api_key_env'; a catalog never holds secrets"
            )
        protocol = str(options.get("protocol", ""))
        if protocol not in PROTOCOLS:
            raise ValueError(f"{where}: 'protocol' must be one of {', '.join(PROTOCOLS)}")
        base_url = str(options.get("base_url", "")).rstrip("/")
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.username:
            raise ValueError(f"{where}: 'base_url' must be an http(s) URL without credentials")
        known = {k: v for k, v in options.items() if k in _ENGINE_KEYS}
        config = cls(
            name=name,
            protocol=protocol,
            base_url=base_url,
            api_key_env=_optional_str(known.get("api_key_env")),
            model=_optional_str(known.get("model")),
            max_in_flight=int(known.get("max_in_flight", 4)),
            deadline_s=float(known.get("deadline_s", 1800.0)),
            poll_s=float(known.get("poll_s", 5.0)),
            request_timeout_s=float(known.get("request_timeout_s", 30.0)),
            max_retries=int(known.get("max_retries", 5)),
            backoff_s=float(known.get("backoff_s", 1.0)),
            max_backoff_s=float(known.get("max_backoff_s", 60.0)),
            max_video_bytes=int(known.get("max_video_bytes", 512 * 2**20)),
            download_timeout_s=float(known.get("download_timeout_s", 600.0)),
            allow_hosts=tuple(str(h) for h in known.get("allow_hosts", ())),
            protocol_options={k: v for k, v in options.items() if k not in _ENGINE_KEYS},
        )
        if config.max_in_flight < 1 or config.deadline_s <= 0 or config.poll_s <= 0:
            raise ValueError(f"{where}: max_in_flight, deadline_s and poll_s must be positive")
        try:  # the protocol's own keys (a served model's fps, say), checked at catalog load
            protocol_type(protocol)(config.protocol_options)
        except ValueError as error:
            raise ValueError(f"{where}: {error}") from None
        return config

    @property
    def host(self) -> str:
        return urlsplit(self.base_url).hostname or ""


def _optional_str(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)
