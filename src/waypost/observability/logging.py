"""Logging setup: one JSON object per line (or plain text), fields from ``extra=``."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import orjson

from waypost.observability.tracing_context import log_ids

# Record attributes that are not ``extra=`` fields; uvicorn adds an ANSI-coloured copy of its message.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName", "color_message"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if (ids := log_ids()) is not None:  # logged while a traced request was handled
            out["trace_id"], out["span_id"] = ids
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(
            f"{k}={v}" for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")
        )
        if (ids := log_ids()) is not None:
            extras = f"{extras} trace_id={ids[0]} span_id={ids[1]}".lstrip()
        line = f"{self.formatTime(record)} {record.levelname:<7} {record.name}: {record.getMessage()}"
        if extras:
            line += f" {extras}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure_logging(level: str, json_format: bool) -> None:
    """One handler, on the root logger, so that every line on stderr has the same format: ours and
    the HTTP server's (uvicorn, run with ``log_config=None`` and this level) at ``level``, other
    libraries' and Python warnings at warning and above. A plain-text line in a JSON log breaks
    whatever reads it."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_format else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    ours = logging.getLogger("waypost")
    ours.handlers.clear()
    ours.setLevel(level.upper())
    ours.propagate = True
    logging.captureWarnings(True)
