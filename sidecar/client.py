"""The operator's side of the protocol: send one signed request (``dns-sidecar request``)."""

from __future__ import annotations

import json
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import aiohttp

from sidecar.auth import signing
from sidecar.auth.signing import Algorithm

DEFAULT_URL = "http://127.0.0.1:7100"

NAME_MISMATCH = (62, 64)  # X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH


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
    cacert: Path | None = None,
    server_name: str | None = None,
) -> Reply:
    """Send ``method path`` to ``url``, signed with ``secret`` when one is given. An https://
    server is verified against ``cacert`` when given, else the system's roots (which
    ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` replace, as for the operator's Go client), for
    ``server_name`` when given (also sent as SNI), else for the URL's host."""
    method = method.upper()
    headers = {"Content-Type": "application/json"} if data else {}
    if secret is not None:
        signed_path = unquote(urlsplit(path).path)
        headers.update(signing.sign(secret, algorithm, method, signed_path, data))
    verify = ssl.create_default_context(cafile=cacert) if cacert else True
    timeout = aiohttp.ClientTimeout(total=seconds)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.request(
                method,
                url.rstrip("/") + path,
                data=data or None,
                headers=headers,
                ssl=verify,
                server_hostname=server_name,
            ) as r,
        ):
            status, reply_headers, raw = r.status, dict(r.headers), await r.read()
    except aiohttp.ClientConnectorCertificateError as err:
        if getattr(err.certificate_error, "verify_code", None) in NAME_MISMATCH:
            msg = (
                f"the server's certificate is not for this host ({err.certificate_error}); "
                "pass --server-name NAME with a name it holds (through kubectl port-forward: "
                "the Service's name)"
            )
            raise ConnectionError(msg) from err
        msg = (
            f"the server's certificate is not trusted ({err.certificate_error}); pass --cacert "
            "PATH with the CA that issued it"
        )
        raise ConnectionError(msg) from err
    except aiohttp.ServerDisconnectedError as err:
        msg = "the server closed the connection without answering (an https:// server called "
        raise ConnectionError(msg + "with http://?)") from err
    try:
        body: Any = json.loads(raw)
    except ValueError:
        body = raw.decode(errors="replace")
    return Reply(status, reply_headers, body)
