"""Keeping secrets out of log lines: API keys (``?key=``), download-link signatures,
webhook secrets and bearer tokens are replaced by ``[redacted]`` before a line is written.

``SecretFilter`` is attached to every handler kinema's processes log through (uvicorn's
access and error logs included, see ``kinema.server``), so no request line can carry a
secret to disk whatever logger wrote it.
"""

from __future__ import annotations

import logging
import re
from typing import Any

REDACTED = "[redacted]"

# Query parameters whose values are secrets, wherever a URL is logged.
_SECRET_PARAMS = re.compile(
    r"(?i)([?&](?:key|api_key|apikey|signature|sig|token|access_token|secret|password"
    r"|x-amz-signature|x-amz-credential|x-amz-security-token)=)[^&#\s\"']*"
)
_WEBHOOK_SECRET = re.compile(r"whsec_[A-Za-z0-9+/=]+")
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+")


def redact(text: str) -> str:
    """``text`` with every secret it holds replaced."""
    text = _SECRET_PARAMS.sub(lambda m: m.group(1) + REDACTED, text)
    text = _WEBHOOK_SECRET.sub("whsec_" + REDACTED, text)
    return _BEARER.sub(lambda m: m.group(1) + REDACTED, text)


def _redact_value(value: Any) -> Any:
    return redact(value) if isinstance(value, str) else value


class SecretFilter(logging.Filter):
    """Redacts a record's message and its string arguments (uvicorn's access log passes
    the request path as an argument), keeping the record's shape for its formatter."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_redact_value(arg) for arg in record.args)
        elif isinstance(record.args, dict):
            record.args = {key: _redact_value(arg) for key, arg in record.args.items()}
        return True


def protect(handlers: list[logging.Handler]) -> None:
    """Add a ``SecretFilter`` to each of ``handlers`` that has none."""
    for handler in handlers:
        if not any(isinstance(f, SecretFilter) for f in handler.filters):
            handler.addFilter(SecretFilter())


def log_config(base: dict[str, Any]) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` dict like ``base`` with a ``SecretFilter`` on every
    handler (for uvicorn's ``log_config``)."""
    config = {**base, "filters": {**base.get("filters", {}), "secrets": {"()": SecretFilter}}}
    config["handlers"] = {
        name: {**handler, "filters": [*handler.get("filters", []), "secrets"]}
        for name, handler in base.get("handlers", {}).items()
    }
    return config
