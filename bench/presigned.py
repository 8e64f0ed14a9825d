"""Files of pre-signed requests for ``wrk`` (``bench/presigned.lua``), written before a run.

Each request is a complete HTTP/1.1 message with its own timestamp and nonce, preceded by a
line giving its length, so the load generator only copies bytes while it runs. A request file
is good for the timestamp window (300 s by default) after it is written.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from sidecar.auth.signing import Algorithm, sign

Request = tuple[str, str, bytes]  # method, path, body
SECRET = b"bench-secret"
NAMES = 1000  # distinct record names the mixes touch
SPARE = 64  # requests written beyond the count, for wrk to send (or not) while it stops


def upsert(i: int, domain: str = "example.com") -> Request:
    body = {
        "record": {
            "type": "A",
            "domain": domain,
            "subdomain": f"h{i}",
            "values": [f"192.0.2.{i % 250 + 1}"],
        },
        "operation": "upsert",
    }
    return "POST", "/records", json.dumps(body).encode()


def get(i: int, domain: str = "example.com") -> Request:
    return "GET", f"/records/A/{domain}/h{i}", b""


def delete(i: int, domain: str = "example.com") -> Request:
    return "DELETE", f"/records/A/{domain}/h{i}", b""


def mix(i: int) -> Request:
    """The 50/50 mix: an upsert, then a GET of a name created before the run (``NAMES``)."""
    n = i // 2
    return upsert(n % NAMES) if i % 2 == 0 else get((n + NAMES // 2) % NAMES)


def soak(i: int) -> Request:
    """Upserts, GETs and deletes in turn (a GET after a delete answers 404)."""
    return (upsert, get, delete)[i % 3](i // 3 % NAMES)


def encode(request: Request, host: str, secret: bytes | None, nonce: str) -> bytes:
    method, path, body = request
    headers = {"Host": host}
    if body:
        headers |= {"Content-Type": "application/json", "Content-Length": str(len(body))}
    if secret is not None:
        headers |= sign(secret, Algorithm.SHA256, method, path, body, nonce=nonce)
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return f"{method} {path} HTTP/1.1\r\n{head}\r\n".encode() + body


def write(
    path: Path,
    make: Callable[[int], Request],
    count: int,
    host: str,
    *,
    secret: bytes | None = SECRET,
    run: str = "r",
) -> Path:
    """``count`` requests ``make(0)``... signed with ``secret`` (and ``SPARE`` more); nonces
    unique per ``run``."""
    with path.open("wb") as out:
        for i in range(count + SPARE):
            raw = encode(make(i), host, secret, f"{run}-{i}")
            out.write(b"%d\n" % len(raw) + raw)
    return path
