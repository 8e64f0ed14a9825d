"""JSON responses: every body on the protocol port is JSON, errors included.

Each is a :class:`JsonAnswer`: aiohttp's ``web.Response`` with a JSON body of bytes encoded
here (compact separators, one encoder for the process), written by aiohttp as any response is.
(It was once a ``StreamResponse`` that wrote its own head with aiohttp's private serialiser: a
few microseconds less per request, for a dependency on aiohttp's internals; see
``docs/benchmarks.md``.)
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from sidecar.errors import SidecarError
from sidecar.records import RecordSet

CONTENT_TYPE = "application/json"
_encode = json.JSONEncoder(separators=(",", ":")).encode  # json.dumps builds one per call


class JsonAnswer(web.Response):
    """A JSON body (already encoded) and its status."""

    def __init__(
        self, body: bytes, *, status: int = 200, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(body=body, status=status, headers=headers, content_type=CONTENT_TYPE)


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
