"""Log output: one JSON object per line off a terminal, readable key=value lines on one.

Every record may carry structured fields in ``extra={"fields": {...}}``; secrets never go in.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from sidecar.settings import LogFormat, LogSettings

ACCESS_LOGGER = "sidecar.access"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(getattr(record, "fields", {}))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class ConsoleFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC).strftime("%H:%M:%S")
        fields = " ".join(
            f"{key}={value}"
            for key, value in getattr(record, "fields", {}).items()
            if value is not None
        )
        text = f"{stamp} {record.levelname:<7} {record.getMessage()} {fields}".rstrip()
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def configure(settings: LogSettings, stream: TextIO | None = None) -> None:
    """Route every logger to ``stream`` (stderr) in the chosen format."""
    out = stream or sys.stderr
    fmt = settings.format
    if fmt is LogFormat.AUTO:
        fmt = LogFormat.CONSOLE if out.isatty() else LogFormat.JSON
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter() if fmt is LogFormat.JSON else ConsoleFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)  # we write our own line
    # the SDK's HTTP client logs a line per Cloudflare call at INFO: the access line counts them
    logging.getLogger("httpx").setLevel(logging.WARNING)
