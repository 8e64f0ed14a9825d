"""JSON responses: every body on the protocol port is JSON, errors included.

Each is a :class:`JsonAnswer`: the bytes aiohttp's ``web.Response`` writes for a JSON body
(the same headers in the same order: the caller's, ``Content-Type``, ``X-Request-Id``,
``Content-Length``, ``Date``, ``Server``, and ``Connection`` where HTTP/1.0 or a closing
connection needs it), without the general machinery a response goes through there
(payload types, chunking, compression, cookies, length checks, signals): the head is
serialised by aiohttp's own serialiser and written with the body in one call.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any

from aiohttp import hdrs, web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.helpers import rfc822_formatted_time
from aiohttp.http import SERVER_SOFTWARE, HttpVersion10, HttpVersion11
from aiohttp.http_writer import _serialize_headers  # aiohttp's (C) head serialiser; pinned

from sidecar.errors import SidecarError
from sidecar.records import RecordSet

CONTENT_TYPE = "application/json"
_encode = json.JSONEncoder(separators=(",", ":")).encode  # json.dumps builds one per call


class JsonAnswer(web.StreamResponse):
    """A JSON body and its status, written in one piece when aiohttp finishes the request."""

    _head = b""

    def __init__(
        self, body: bytes, *, status: int = 200, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(status=status, headers=headers)
        self._headers[hdrs.CONTENT_TYPE] = CONTENT_TYPE
        self._json = body

    @property
    def body(self) -> bytes:
        return self._json

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        """The head, as aiohttp's ``Response`` prepares it for a body of known length."""
        if self._eof_sent:
            return None
        if self._payload_writer is not None:
            return self._payload_writer
        keep_alive = self._keep_alive
        if keep_alive is None:
            keep_alive = self._keep_alive = request.keep_alive
        version = request.version
        headers = self._headers
        headers[hdrs.CONTENT_LENGTH] = str(len(self.body))
        headers[hdrs.DATE] = rfc822_formatted_time()
        headers[hdrs.SERVER] = SERVER_SOFTWARE
        if keep_alive:
            if version == HttpVersion10:
                headers[hdrs.CONNECTION] = "keep-alive"
        elif version == HttpVersion11:
            headers[hdrs.CONNECTION] = "close"
        status_line = f"HTTP/{version.major}.{version.minor} {self._status} {self._reason}"
        self._head = _serialize_headers(status_line, headers)
        self._req = request
        self._payload_writer = request.writer
        return self._payload_writer

    async def write_eof(self, data: bytes = b"") -> None:
        """Head and body in one write (the head alone for a ``HEAD`` request)."""
        if self._eof_sent:
            return
        writer, request = self._payload_writer, self._req
        assert writer is not None
        assert request is not None
        assert not data, "the body is given to the constructor"
        await writer.write_eof(
            self._head if request.method == hdrs.METH_HEAD else self._head + self.body
        )
        self._eof_sent = True
        self._req = None
        self._body_length = writer.output_size
        self._payload_writer = None


def json_response(
    data: Mapping[str, Any], *, status: int = 200, headers: Mapping[str, str] | None = None
) -> JsonAnswer:
    return JsonAnswer(_encode(data).encode(), status=status, headers=headers)


def record_response(record: RecordSet, message: str | None = None) -> JsonAnswer:
    """``{"success": true, "record": ..., "message": ...}`` (no message: none), the record's
    JSON remembered: GETs and unchanged upserts answer the same record again and again."""
    tail = "}" if message is None else f',"message":{_encode(message)}}}'
    return JsonAnswer(f'{{"success":true,"record":{_record_json(record)}{tail}'.encode())


@functools.lru_cache(maxsize=4096)
def _record_json(record: RecordSet) -> str:
    return _encode(record.to_wire())


def error_response(error: SidecarError) -> JsonAnswer:
    body = {
        "success": False,
        "error": {"code": error.code, "message": error.message, "details": error.details},
    }
    return json_response(body, status=error.status, headers=error.headers)
