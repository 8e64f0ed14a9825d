"""JSON responses: every body on the protocol port is JSON, errors included."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from sidecar.errors import SidecarError

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


def error_response(error: SidecarError) -> web.Response:
    body = {
        "success": False,
        "error": {"code": error.code, "message": error.message, "details": error.details},
    }
    return json_response(body, status=error.status, headers=error.headers)
