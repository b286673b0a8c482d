"""Log output: plain text by default, one JSON object per line with
``KINEMA_LOG_FORMAT=json``.

Every JSON line carries ``time``, ``level``, ``logger`` and ``message``, the request, job
and key ids in force (see ``context``), the ``job_id`` / ``key_id`` a call passes in
``extra``, and the exception's traceback when there is one.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any, Literal

from kinema.logsafe import SecretFilter
from kinema.observability import context

LogFormat = Literal["text", "json"]
_ID_FIELDS = ("request_id", "job_id", "key_id")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        line |= context.current()
        for name in _ID_FIELDS:  # an explicit ``extra`` wins over the context
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class _TextFormatter(logging.Formatter):
    """The plain format, with whichever ids are in force appended."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        ids = context.current()
        for name in _ID_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                ids[name] = value
        if not ids:
            return text
        return text + " " + " ".join(f"{k}={v}" for k, v in ids.items())


def configure_logging(log_format: LogFormat, level: str = "info") -> None:
    """Send every logger's lines, uvicorn's included, to stderr in ``log_format``."""
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(_TextFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    handler.addFilter(SecretFilter())  # no key, signature or secret reaches a line
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
