"""What the real operator makes of every answer: its client's decision, replayed on real replies.

The operator (``morten-olsen/homelab-dns-operator``) decides in ``pkg/dnsclient/client.go`` and
``internal/controller/dnsrecord_controller.go``: a body it cannot parse as JSON is an error it
retries; ``success: false`` with 404 is "not found" on GET and success on DELETE; an upsert
answered 400 is not retried ("ValidationFailed"), 401 is "AuthenticationFailed" (and retried),
and everything else is retried. ``operator_verdict`` is that decision, as Python; the table
below pins, for every error code of SPEC section 2, which verdict a real reply earns.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import SecretStr

from sidecar.auth.clients import Client
from sidecar.auth.signing import Algorithm
from sidecar.config.runtime import Runtime
from sidecar.errors import ProviderError, ProviderUnavailable, RateLimited
from sidecar.providers.memory import MemoryProvider
from tests.builders import FailingProvider, make_runtime
from tests.conftest import SECRET, Caller, ProtocolReply, StartSidecar, make_settings

SUCCESS = "success"
NOT_FOUND = "not found"
NO_RETRY = "do not retry"
AUTH = "auth failed"
RETRY = "retry"


def operator_verdict(method: str, reply: ProtocolReply) -> str:
    """The operator's reading of one reply (client.go, then the controller's retry rule)."""
    if not isinstance(reply.body, dict):
        return RETRY  # json.Unmarshal failed: a plain error, retried
    if reply.body.get("success") is True:
        return SUCCESS if reply.status == 200 else RETRY  # "UPSERT_FAILED"
    if reply.status == 404 and method == "GET":
        return NOT_FOUND  # GetRecord returns nil, nil
    if reply.status == 404 and method == "DELETE":
        return SUCCESS  # "404 is treated as success for idempotency"
    if reply.status == 400:
        return NO_RETRY  # "Don't retry on validation errors"
    if reply.status == 401:
        return AUTH  # reason AuthenticationFailed; retried like the rest
    return RETRY


def _one_zone_per_failure() -> Runtime:
    """One healthy zone, and one zone for each way an account can fail."""
    providers: dict[str, Any] = {
        "example.com": MemoryProvider(),
        "rejects.example": FailingProvider(ProviderError("Cloudflare said no (code 1004).")),
        "down.example": FailingProvider(
            ProviderUnavailable("Account 'down': credentials missing.")
        ),
        "limited.example": FailingProvider(RateLimited("Budget spent.", retry_after=30)),
        "buggy.example": FailingProvider(RuntimeError("a bug")),
    }
    return make_runtime(
        providers,
        [(zone, zone) for zone in providers],
        clients=(Client.fixed("operator", Algorithm.SHA256, (SECRET,)),),
    )


def _upsert(kind: str, domain: str, sub: str, values: list[str], ttl: int = 300) -> bytes:
    record = {"type": kind, "domain": domain, "subdomain": sub, "values": values, "ttl": ttl}
    return json.dumps({"record": record, "operation": "upsert"}).encode()


# (what the request is, method, path, body, options) -> (status, code, operator's verdict)
CASES: list[tuple[str, str, str, bytes, dict[str, Any], tuple[int, str | None, str]]] = [
    ("upsert", "POST", "/records", _upsert("A", "example.com", "www", ["192.0.2.1"]), {},
     (200, None, SUCCESS)),
    ("get", "GET", "/records/A/example.com/www", b"", {}, (200, None, SUCCESS)),
    ("body not JSON", "POST", "/records", b"{not json", {},
     (400, "INVALID_REQUEST", NO_RETRY)),
    ("bad address", "POST", "/records", _upsert("A", "example.com", "x", ["300.1.1.1"]), {},
     (400, "INVALID_RECORD", NO_RETRY)),
    ("wrong secret", "POST", "/records", _upsert("A", "example.com", "x", ["192.0.2.1"]),
     {"secret": b"wrong"}, (401, "AUTH_FAILED", AUTH)),
    ("no zone", "POST", "/records", _upsert("A", "example.nope", "x", ["192.0.2.1"]), {},
     (403, "DOMAIN_NOT_ALLOWED", RETRY)),
    ("absent record", "GET", "/records/AAAA/example.com/www", b"", {},
     (404, "RECORD_NOT_FOUND", NOT_FOUND)),
    # A server URL with a path the sidecar does not serve: upserts are retried, but the
    # operator takes the 404 of a DELETE for success and drops its finalizer.
    ("unknown path, upsert", "POST", "/api/records",
     _upsert("A", "example.com", "x", ["192.0.2.1"]), {}, (404, "NOT_FOUND", RETRY)),
    ("unknown path, delete", "DELETE", "/api/records/A/example.com/x", b"", {},
     (404, "NOT_FOUND", SUCCESS)),
    ("wrong method", "PUT", "/records", b"{}", {}, (405, "METHOD_NOT_ALLOWED", RETRY)),
    ("CNAME beside A", "POST", "/records", _upsert("CNAME", "example.com", "www", ["t.example"]),
     {}, (409, "RECORD_CONFLICT", RETRY)),
    ("body too large", "POST", "/records", b"x" * (64 * 1024 + 1), {},
     (413, "PAYLOAD_TOO_LARGE", RETRY)),
    ("budget spent", "POST", "/records", _upsert("A", "limited.example", "x", ["192.0.2.1"]), {},
     (429, "RATE_LIMITED", RETRY)),
    ("provider refuses", "POST", "/records", _upsert("A", "rejects.example", "x", ["192.0.2.1"]),
     {}, (502, "PROVIDER_ERROR", RETRY)),
    ("provider down", "DELETE", "/records/A/down.example/x", b"", {},
     (503, "PROVIDER_UNAVAILABLE", RETRY)),
    ("a bug", "POST", "/records", _upsert("A", "buggy.example", "x", ["192.0.2.1"]), {},
     (500, "INTERNAL_ERROR", RETRY)),
    ("delete", "DELETE", "/records/A/example.com/www", b"", {}, (200, None, SUCCESS)),
    ("delete again", "DELETE", "/records/A/example.com/www", b"", {}, (200, None, SUCCESS)),
]  # fmt: skip


async def test_every_error_code_gets_the_operators_intended_verdict(
    start_sidecar: StartSidecar,
) -> None:
    """Each code of SPEC section 2, produced by a real request, means to the operator what it
    should: 400 stop, 401 auth failed, 404 not found on GET and done on DELETE, else retry."""
    settings = make_settings(hmac_secret=SecretStr("unused"))
    sidecar = await start_sidecar(settings, runtime=_one_zone_per_failure(), secret=SECRET)
    caller: Caller = sidecar.caller
    got = []
    for _, method, path, body, options, _ in CASES:
        reply = await caller.call(method, path, raw=body, **options)
        got.append((reply.status, reply.code, operator_verdict(method, reply)))
    assert got == [expected for *_, expected in CASES]
    codes = {code for *_, (_, code, _) in CASES} - {None}
    assert len(codes) == 13  # every row of SPEC section 2's error table


@pytest.mark.parametrize(
    ("method", "status", "body", "verdict"),
    [
        ("POST", 400, "not json", RETRY),
        ("POST", 201, {"success": True}, RETRY),
        ("GET", 404, {"success": False}, NOT_FOUND),
        ("DELETE", 404, {"success": False}, SUCCESS),
        ("POST", 404, {"success": False}, RETRY),
    ],
)
def test_operator_verdict_reads_like_the_go_client(
    method: str, status: int, body: Any, verdict: str
) -> None:
    """The ported decision keeps the Go client's corners: an unparsable body is retried even
    with 400, and a success flag needs 200."""
    assert operator_verdict(method, ProtocolReply(status, body)) == verdict
