"""A corpus of bad requests: each gets the right 4xx, never a 500, and changes nothing."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from sidecar.providers.base import ZonePolicy
from sidecar.providers.memory import MemoryProvider
from sidecar.records import RecordKey
from tests.conftest import Sidecar, StartSidecar, eventually


def body(record: dict[str, Any] | None = None, operation: Any = "upsert", **extra: Any) -> bytes:
    base = {"type": "A", "domain": "example.com", "subdomain": "www", "values": ["192.0.2.1"]}
    return json.dumps(
        {"record": {**base, **(record or {})}, "operation": operation, **extra}
    ).encode()


LONG_LABEL = "a" * 300
CORPUS: list[tuple[str, bytes, int, str]] = [
    ("empty body", b"", 400, "INVALID_REQUEST"),
    ("malformed JSON", b'{"record": {', 400, "INVALID_REQUEST"),
    ("not UTF-8", b'{"record": "\xff\xfe"}', 400, "INVALID_REQUEST"),
    ("JSON array", b"[1, 2, 3]", 400, "INVALID_REQUEST"),
    ("JSON string", b'"upsert"', 400, "INVALID_REQUEST"),
    (
        "record is a list",
        json.dumps({"record": [], "operation": "upsert"}).encode(),
        400,
        "INVALID_REQUEST",
    ),
    ("values is a string", body({"values": "192.0.2.1"}), 400, "INVALID_REQUEST"),
    ("value is a number", body({"values": [3232235777]}), 400, "INVALID_REQUEST"),
    ("ttl is a string", body({"ttl": "300"}), 400, "INVALID_REQUEST"),
    ("ttl is a boolean", body({"ttl": True}), 400, "INVALID_REQUEST"),
    ("ttl is a float", body({"ttl": 300.5}), 400, "INVALID_REQUEST"),
    ("type is null", body({"type": None}), 400, "INVALID_REQUEST"),
    ("operation missing", json.dumps({"record": {"type": "A"}}).encode(), 400, "INVALID_REQUEST"),
    ("unknown operation", body(operation="delete"), 400, "INVALID_REQUEST"),
    ("operation is a number", body(operation=1), 400, "INVALID_REQUEST"),
    ("unknown type", body({"type": "HINFO"}), 400, "INVALID_RECORD"),
    ("empty type", body({"type": ""}), 400, "INVALID_RECORD"),
    ("bad IPv4", body({"values": ["192.0.2.256"]}), 400, "INVALID_RECORD"),
    ("IPv4 with leading zero", body({"values": ["192.0.2.01"]}), 400, "INVALID_RECORD"),
    ("IPv6 in an A record", body({"values": ["2001:db8::1"]}), 400, "INVALID_RECORD"),
    (
        "IPv4 in an AAAA record",
        body({"type": "AAAA", "values": ["192.0.2.1"]}),
        400,
        "INVALID_RECORD",
    ),
    ("scoped IPv6", body({"type": "AAAA", "values": ["fe80::1%eth0"]}), 400, "INVALID_RECORD"),
    ("no values", body({"values": []}), 400, "INVALID_RECORD"),
    (
        "CNAME with two values",
        body({"type": "CNAME", "values": ["a.example.net", "b.example.net"]}),
        400,
        "INVALID_RECORD",
    ),
    (
        "CNAME to a bad name",
        body({"type": "CNAME", "values": ["bad..name"]}),
        400,
        "INVALID_RECORD",
    ),
    (
        "MX without priority",
        body({"type": "MX", "values": ["mail.example.com"]}),
        400,
        "INVALID_RECORD",
    ),
    (
        "MX priority too big",
        body({"type": "MX", "values": ["70000 mail.example.com"]}),
        400,
        "INVALID_RECORD",
    ),
    (
        "SRV with three fields",
        body({"type": "SRV", "values": ["10 5 sip.example.com"]}),
        400,
        "INVALID_RECORD",
    ),
    ("CAA without a tag", body({"type": "CAA", "values": ["0"]}), 400, "INVALID_RECORD"),
    (
        "NS at the apex",
        body({"type": "NS", "subdomain": "@", "values": ["ns1.example.net"]}),
        400,
        "INVALID_RECORD",
    ),
    ("TXT with a newline", body({"type": "TXT", "values": ["a\nb"]}), 400, "INVALID_RECORD"),
    ("TXT too long", body({"type": "TXT", "values": ["x" * 5000]}), 400, "INVALID_RECORD"),
    ("zero TTL", body({"ttl": 0}), 400, "INVALID_RECORD"),
    ("negative TTL", body({"ttl": -1}), 400, "INVALID_RECORD"),
    ("huge TTL", body({"ttl": 2**40}), 400, "INVALID_RECORD"),
    ("300-character label", body({"subdomain": LONG_LABEL}), 400, "INVALID_RECORD"),
    (
        "name over 253 characters",
        body({"subdomain": ".".join(["a" * 60] * 4)}),
        400,
        "INVALID_RECORD",
    ),
    ("empty domain", body({"domain": ""}), 400, "INVALID_RECORD"),
    ("wildcard in the domain", body({"domain": "*.example.com"}), 400, "INVALID_RECORD"),
    ("wildcard not leftmost", body({"subdomain": "a.*.b"}), 400, "INVALID_RECORD"),
    ("space in a label", body({"subdomain": "my host"}), 400, "INVALID_RECORD"),
    ("label starting with a hyphen", body({"subdomain": "-www"}), 400, "INVALID_RECORD"),
    ("invalid non-ASCII name", body({"subdomain": "a\u200db"}), 400, "INVALID_RECORD"),
    ("emoji name", body({"domain": "\U0001f600.example"}), 400, "INVALID_RECORD"),
    ("control character in name", body({"subdomain": "a\tb"}), 400, "INVALID_RECORD"),
    ("10 MB body", b"{" + b" " * (10 * 1024 * 1024) + b"}", 413, "PAYLOAD_TOO_LARGE"),
]

PATH_CORPUS: list[tuple[str, str, str, int, str]] = [
    ("unknown type in path", "GET", "/records/BOGUS/example.com/www", 400, "INVALID_RECORD"),
    ("bad domain in path", "GET", "/records/A/exa..mple.com/www", 400, "INVALID_RECORD"),
    (
        "300-character label in path",
        "DELETE",
        f"/records/A/example.com/{LONG_LABEL}",
        400,
        "INVALID_RECORD",
    ),
    ("too few path parts", "GET", "/records/A/example.com", 404, "NOT_FOUND"),
    ("too many path parts", "DELETE", "/records/A/example.com/www/extra", 404, "NOT_FOUND"),
    ("POST to a record path", "POST", "/records/A/example.com/www", 405, "METHOD_NOT_ALLOWED"),
    ("GET /records", "GET", "/records", 405, "METHOD_NOT_ALLOWED"),
    ("DELETE /health", "DELETE", "/health", 405, "METHOD_NOT_ALLOWED"),
]


SEEDED = (("A", "www", ["192.0.2.1"]), ("TXT", "@", ["hello"]))


@pytest.fixture
async def seeded(start_sidecar: StartSidecar) -> Sidecar:
    sidecar = await start_sidecar()
    for kind, sub, values in SEEDED:
        assert (await sidecar.caller.upsert(kind, "example.com", sub, values)).status == 200
    return sidecar


async def _state(sidecar: Sidecar) -> object:
    """The records through the provider's public interface: the count /status shows, and the
    seeded record sets."""
    provider = sidecar.runtime.accounts["memory"].provider
    assert isinstance(provider, MemoryProvider)
    zone = ZonePolicy(name="example.com")
    seeded = [
        await provider.get(zone, RecordKey.parse(kind, "example.com", sub))
        for kind, sub, _ in SEEDED
    ]
    return provider.status()["recordSets"], seeded


@pytest.mark.parametrize(("name", "raw", "status", "code"), CORPUS, ids=[c[0] for c in CORPUS])
async def test_bad_body(seeded: Sidecar, name: str, raw: bytes, status: int, code: str) -> None:
    """The documented 4xx, a JSON error body with a message, and no change to the records."""
    before = await _state(seeded)
    reply = await seeded.caller.call("POST", "/records", raw=raw)
    assert (reply.status, reply.code) == (status, code), reply.body
    assert reply.body["success"] is False
    assert reply.message.endswith(".")
    assert await _state(seeded) == before


@pytest.mark.parametrize(
    ("name", "method", "path", "status", "code"), PATH_CORPUS, ids=[c[0] for c in PATH_CORPUS]
)
async def test_bad_path(  # noqa: PLR0917 - pytest passes parameters positionally
    seeded: Sidecar, name: str, method: str, path: str, status: int, code: str
) -> None:
    """Bad record paths and wrong methods get their 4xx and change nothing."""
    before = await _state(seeded)
    reply = await seeded.caller.call(method, path)
    assert (reply.status, reply.code) == (status, code), reply.body
    assert await _state(seeded) == before


async def test_chunked_body_over_the_limit(seeded: Sidecar) -> None:
    """Without Content-Length the limit still holds: 413 once the body passes 64 KiB."""

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(100):
            yield b" " * 4096

    async with seeded.caller.session.post(seeded.caller.base + "/records", data=chunks()) as r:
        assert r.status == 413
        assert (await r.json())["error"]["code"] == "PAYLOAD_TOO_LARGE"


async def test_deeply_nested_json_is_not_called_invalid(seeded: Sidecar) -> None:
    """JSON nested deeper than the parser goes is named as such, not as "not valid JSON"."""
    nested = b'{"record": ' + b"[" * 500 + b"]" * 500 + b', "operation": "upsert"}'
    reply = await seeded.caller.call("POST", "/records", raw=nested)
    assert (reply.status, reply.code, reply.message) == (
        400,
        "INVALID_REQUEST",
        (
            "The body's JSON is nested too deeply for the parser (a record body has three levels: "
            "the body, the record and its values)."
        ),
    )


async def test_a_body_that_fails_to_decode_is_a_400_not_an_internal_error(
    start_sidecar: StartSidecar,
) -> None:
    """A body with ``Content-Encoding: gzip`` that is not gzip is the caller's bad request
    (400 INVALID_REQUEST), not a bug of the sidecar's (500)."""
    sidecar = await start_sidecar()
    reader, writer = await asyncio.open_connection("127.0.0.1", sidecar.port)
    writer.write(
        b"POST /records HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Encoding: gzip\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
    )
    reply = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head, _, answer = reply.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] == b"400", reply
    error = json.loads(answer)["error"]
    assert error["code"] == "INVALID_REQUEST"
    assert error["message"].startswith("The request body cannot be read: ")


async def test_a_client_gone_in_the_middle_of_its_body_is_not_logged_as_a_bug(
    start_sidecar: StartSidecar, caplog: pytest.LogCaptureFixture
) -> None:
    """The connection closes with the body half sent: the request ends as a 400 in the access
    log, with no error logged (nothing went wrong in the sidecar)."""
    sidecar = await start_sidecar()
    with caplog.at_level(logging.INFO):
        _, writer = await asyncio.open_connection("127.0.0.1", sidecar.port)
        writer.write(b'POST /records HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"rec')
        await writer.drain()
        writer.close()
        await eventually(lambda: any(r.getMessage() == "POST /records 400" for r in caplog.records))
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize(
    ("raw", "message", "field"),
    [
        (b"[1]", "Input should be an object", ""),
        (b'{"record": [], "operation": "upsert"}', "record: Input should be an object", "record"),
        (
            b'{"record": {"domain": "a", "values": []}, "operation": "upsert"}',
            "record.type: Field required",
            "record.type",
        ),
        (
            b'{"record": {"type": "A", "domain": "a", "values": [1]}, "operation": "upsert"}',
            "record.values.0: Input should be a valid string",
            "record.values.0",
        ),
        (
            b'{"record": {"type": "A", "domain": "a", "values": [], "ttl": "3"}, "operation": 1}',
            "record.ttl: Input should be a valid integer",
            "record.ttl",
        ),
        (
            b'{"record": {"type": "A", "domain": "a", "values": []}}',
            "operation: Field required",
            "operation",
        ),
    ],
)
async def test_a_shape_error_names_the_field(
    start_sidecar: StartSidecar, raw: bytes, message: str, field: str
) -> None:
    """The message names the first offending field (none: the body as a whole) and what is
    wrong with it; ``details.field`` is the same field."""
    sidecar = await start_sidecar()
    reply = await sidecar.caller.call("POST", "/records", raw=raw, sign=False)
    assert (reply.status, reply.code) == (400, "INVALID_REQUEST")
    assert reply.message == f"The body does not have the expected shape: {message}."
    assert reply.body["error"]["details"]["field"] == field
