"""Response bodies built from remembered parts read exactly as the JSON encoder writes them."""

from __future__ import annotations

import asyncio
import json
import re

import pytest
from aiohttp import web

from sidecar.protocol.json import JsonAnswer, record_response
from sidecar.records import RecordKey, RecordSet


@pytest.mark.parametrize("message", [None, "Record created successfully", 'quoted "é" \u2603'])
def test_record_response_is_the_encoded_body(message: str | None) -> None:
    """The body equals ``json.dumps`` of the same dict with compact separators, ASCII only."""
    record = RecordSet.build(RecordKey.parse("TXT", "Example.com", "wWw"), ["v=1 é", '"x"'], 60)
    body: dict[str, object] = {"success": True, "record": record.to_wire()}
    if message is not None:
        body["message"] = message
    response = record_response(record, message)
    assert response.body == json.dumps(body, separators=(",", ":")).encode()
    assert response.content_type == "application/json"
    assert response.status == 200


REQUESTS = {
    "kept alive": b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n",
    "closing": b"GET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    "HTTP/1.0": b"GET /x HTTP/1.0\r\nHost: h\r\n\r\n",
    "HTTP/1.0 kept alive": b"GET /x HTTP/1.0\r\nHost: h\r\nConnection: keep-alive\r\n\r\n",
    "HEAD": b"HEAD /x HTTP/1.1\r\nHost: h\r\n\r\n",
}


@pytest.mark.parametrize("request_bytes", REQUESTS.values(), ids=REQUESTS.keys())
@pytest.mark.parametrize(
    ("status", "headers", "force_close"),
    [(200, None, False), (405, {"Allow": "GET, POST"}, False), (503, {"Retry-After": "3"}, True)],
)
async def test_an_answer_is_the_bytes_aiohttp_writes(
    request_bytes: bytes, status: int, headers: dict[str, str] | None, force_close: bool
) -> None:
    """On the wire a JsonAnswer is byte for byte what aiohttp's Response writes for the same
    JSON body, status and headers (the date aside), whatever the version, keep-alive or method."""
    body = b'{"success":true}'

    def answer(kind: str) -> web.StreamResponse:
        if kind == "aiohttp":
            response: web.StreamResponse = web.Response(
                body=body, status=status, headers=headers, content_type="application/json"
            )
        else:
            response = JsonAnswer(body, status=status, headers=headers)
        response.headers["X-Request-Id"] = "r-1"
        if force_close:
            response.force_close()
        return response

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        return answer(request.headers.get("Host", ""))

    server = web.Server(handle)
    loop = asyncio.get_running_loop()
    listening = await loop.create_server(server, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    written = {}
    try:
        for kind in ("aiohttp", "ours"):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request_bytes.replace(b"Host: h", b"Host: " + kind.encode()))
            written[kind] = re.sub(rb"Date: [^\r]+", b"Date: -", await reader.read(65536))
            writer.close()
    finally:
        listening.close()
        await server.shutdown(1.0)
    assert written["ours"] == written["aiohttp"]
    assert written["ours"].startswith(b"HTTP/")
