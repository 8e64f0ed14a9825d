"""The operator's side of the protocol: send one signed request (``dns-sidecar request``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import aiohttp

from sidecar.auth import signing
from sidecar.auth.signing import Algorithm

DEFAULT_URL = "http://127.0.0.1:7100"


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: Any


async def send(
    method: str,
    path: str,
    *,
    url: str = DEFAULT_URL,
    data: bytes = b"",
    secret: bytes | None = None,
    algorithm: Algorithm = Algorithm.SHA256,
    seconds: float = 30.0,
) -> Reply:
    """Send ``method path`` to ``url``, signed with ``secret`` when one is given."""
    method = method.upper()
    headers = {"Content-Type": "application/json"} if data else {}
    if secret is not None:
        signed_path = unquote(urlsplit(path).path)
        headers.update(signing.sign(secret, algorithm, method, signed_path, data))
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=seconds)) as session,
        session.request(method, url.rstrip("/") + path, data=data or None, headers=headers) as r,
    ):
        raw = await r.read()
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = raw.decode(errors="replace")
        return Reply(r.status, dict(r.headers), body)
