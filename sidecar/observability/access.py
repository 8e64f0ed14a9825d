"""The access log: one line per protocol request, the largest single cost of a request.

When logging goes to one stream as JSON (``logging.configure``, the way the sidecar ships), the
line is preformatted here, exactly as ``JsonFormatter`` would write it, and buffered: the
buffer is written to the stream once per turn of the event loop, not once per request, and
no ``LogRecord`` is made. Otherwise (console format, another handler such as a test's
capture) the line goes through ``logging`` as any other record.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import UTC, datetime
from typing import Any, TextIO

from sidecar.observability.context import RequestFacts
from sidecar.observability.logging import ACCESS_LOGGER, JsonFormatter

_quote = json.encoder.encode_basestring_ascii  # what json.dumps writes for a str


class AccessLog:
    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._logger = logger or logging.getLogger(ACCESS_LOGGER)
        self._handler = _direct_handler(self._logger)
        self._head = '{"time": "'
        self._middle = f'", "level": "info", "logger": {_quote(self._logger.name)}, "message": '
        self._lines: list[str] = []
        self._second = -1
        self._stamp = ""  # the second's part of the timestamp
        self._milli = -1
        self._now_text = ""  # the whole timestamp of that millisecond

    @property
    def direct(self) -> bool:
        """Whether lines bypass ``logging`` (JSON to one stream)."""
        return self._handler is not None

    def write(self, fields: dict[str, Any]) -> None:
        """One request's line; ``fields`` in the order they are logged."""
        message = f"{fields['method']} {fields['path']} {fields['status']}"
        if self._handler is None:
            self._logger.info(message, extra={"fields": fields})
            return
        parts = [self._head, self._now(), self._middle, _quote(message)]
        keys = _KEYS
        for key, value in fields.items():
            parts.append(keys.get(key) or _key(key))
            kind = type(value)
            if kind is str:
                parts.append(_quote(value))
            elif value is None:
                parts.append("null")
            elif kind is int or kind is float:
                parts.append(repr(value))
            else:
                parts.append(json.dumps(value, default=str))
        parts.append("}\n")
        self._append("".join(parts))

    def request(
        self,
        facts: RequestFacts,
        *,
        remote: str | None,
        method: str,
        path: str,
        status: int,
        code: str | None,
        duration_ms: float,
    ) -> None:
        """A protocol request's line: ``write``'s fields in its order, the request's facts
        among them, formatted in one go (no dict, no loop over the fields)."""
        if self._handler is None:
            self.write(
                {
                    "request_id": facts.request_id,
                    "client": facts.client,
                    "remote": remote,
                    "method": method,
                    "path": path,
                    "status": status,
                    "code": code,
                    "duration_ms": duration_ms,
                    "fqdn": facts.fqdn,
                    "account": facts.account,
                    "provider_calls": facts.provider_calls,
                }
            )
            return
        quote, client, fqdn, account = _quote, facts.client, facts.fqdn, facts.account
        self._append(
            f"{self._head}{self._now()}{self._middle}{quote(f'{method} {path} {status}')}"
            f', "request_id": {quote(facts.request_id)}'
            f', "client": {"null" if client is None else quote(client)}'
            f', "remote": {"null" if remote is None else quote(remote)}'
            f', "method": {quote(method)}, "path": {quote(path)}, "status": {status!r}'
            f', "code": {"null" if code is None else quote(code)}'
            f', "duration_ms": {duration_ms!r}'
            f', "fqdn": {"null" if fqdn is None else quote(fqdn)}'
            f', "account": {"null" if account is None else quote(account)}'
            f', "provider_calls": {facts.provider_calls!r}}}\n'
        )

    def _append(self, line: str) -> None:
        """Buffer ``line`` until the loop's next turn (outside a loop: write it now)."""
        if not self._lines:
            try:
                asyncio.get_running_loop().call_soon(self.flush)
            except RuntimeError:  # no loop: write at once
                self._lines.append(line)
                self.flush()
                return
        self._lines.append(line)

    def flush(self) -> None:
        """Write the buffered lines to the stream (under the handler's lock)."""
        handler = self._handler
        if handler is None or not self._lines:
            return
        text = "".join(self._lines)
        self._lines.clear()
        handler.acquire()
        try:
            handler.stream.write(text)
            handler.stream.flush()
        finally:
            handler.release()

    def _now(self) -> str:
        """``JsonFormatter``'s timestamp: ISO 8601 in UTC with milliseconds (the lines of one
        millisecond share it, the lines of one second its first part)."""
        milli = round(time.time() * 1_000_000) // 1000
        if milli == self._milli:
            return self._now_text
        second, rest = divmod(milli, 1000)
        if second != self._second:
            self._second = second
            self._stamp = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        self._milli = milli
        self._now_text = f"{self._stamp}.{rest:03d}+00:00"
        return self._now_text


def _key(key: str) -> str:
    """``, "key": `` as ``json.dumps`` writes it between two items; the first few remembered."""
    quoted = f", {_quote(key)}: "
    if len(_KEYS) < _MAX_KEYS:
        _KEYS[key] = quoted
    return quoted


_KEYS: dict[str, str] = {}  # the field names of the access line, quoted
_MAX_KEYS = 64


def _direct_handler(logger: logging.Logger) -> logging.StreamHandler[TextIO] | None:
    """The one JSON stream handler that every access line reaches, if that is all there is."""
    if not logger.isEnabledFor(logging.INFO) or logger.filters:
        return None
    handlers: list[logging.Handler] = []
    current: logging.Logger | None = logger
    while current is not None:
        handlers += current.handlers
        current = current.parent if current.propagate else None
    if len(handlers) != 1:
        return None
    handler = handlers[0]
    if (
        type(handler) is not logging.StreamHandler
        or type(handler.formatter) is not JsonFormatter
        or handler.filters
        or handler.level > logging.INFO
    ):
        return None
    return handler
