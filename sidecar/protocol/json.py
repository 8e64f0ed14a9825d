"""JSON responses: every body on the protocol port is JSON, errors included."""

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


def json_response(
    data: Mapping[str, Any], *, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=_encode(data).encode(),
        status=status,
        content_type=CONTENT_TYPE,
        headers=headers,
    )


def record_response(record: RecordSet, message: str | None = None) -> web.Response:
    """``{"success": true, "record": ..., "message": ...}`` (no message: none), the record's
    JSON remembered: GETs and unchanged upserts answer the same record again and again."""
    tail = "}" if message is None else f',"message":{_encode(message)}}}'
    return web.Response(
        body=f'{{"success":true,"record":{_record_json(record)}{tail}'.encode(),
        content_type=CONTENT_TYPE,
    )


@functools.lru_cache(maxsize=4096)
def _record_json(record: RecordSet) -> str:
    return _encode(record.to_wire())


def error_response(error: SidecarError) -> web.Response:
    body = {
        "success": False,
        "error": {"code": error.code, "message": error.message, "details": error.details},
    }
    return json_response(body, status=error.status, headers=error.headers)
