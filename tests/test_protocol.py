"""The webhook protocol end to end over loopback: the guide's examples and every error code."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from sidecar.auth.clients import Client
from sidecar.auth.signing import Algorithm
from sidecar.clock import FrozenClock
from sidecar.errors import ProviderError, ProviderUnavailable
from sidecar.providers.base import Health, ZonePolicy
from sidecar.providers.memory import MemoryProvider
from tests.builders import FailingProvider, make_runtime
from tests.conftest import SECRET, StartSidecar, make_settings

GUIDE_RECORD = {
    "type": "A",
    "domain": "example.com",
    "subdomain": "www",
    "values": ["192.168.1.100", "192.168.1.101"],
    "ttl": 600,
}
GUIDE_WIRE = {**GUIDE_RECORD, "fqdn": "www.example.com"}


@pytest.mark.parametrize("algorithm", [Algorithm.SHA256, Algorithm.SHA512])
async def test_guide_examples_signed(start_sidecar: StartSidecar, algorithm: Algorithm) -> None:
    """Health, create A with two values, get, delete, delete again: the guide's replies."""
    settings = make_settings(hmac_secret=SecretStr(SECRET.decode()), hmac_algorithm=algorithm.value)
    caller = (await start_sidecar(settings, secret=SECRET, algorithm=algorithm)).caller

    health = await caller.call("GET", "/health")
    assert health.status == 200
    assert health.body["status"] == "healthy"
    assert health.body["message"] == "DNS server is operational"
    assert health.body["timestamp"].endswith("Z")

    created = await caller.call("POST", "/records", {"record": GUIDE_RECORD, "operation": "upsert"})
    assert (created.status, created.body) == (
        200,
        {"success": True, "record": GUIDE_WIRE, "message": "Record created successfully"},
    )

    got = await caller.call("GET", "/records/A/example.com/www")
    assert (got.status, got.body) == (200, {"success": True, "record": GUIDE_WIRE})

    deleted = await caller.call("DELETE", "/records/A/example.com/www")
    assert (deleted.status, deleted.body) == (
        200,
        {"success": True, "message": "Record deleted successfully"},
    )

    again = await caller.call("DELETE", "/records/A/example.com/www")
    assert (again.status, again.body) == (
        200,
        {"success": True, "message": "Record does not exist (already deleted)"},
    )

    gone = await caller.call("GET", "/records/A/example.com/www")
    assert gone.status == 404
    assert gone.code == "RECORD_NOT_FOUND"
    assert gone.body["success"] is False


async def test_upsert_reports_created_updated_unchanged(start_sidecar: StartSidecar) -> None:
    """An upsert says what it did, and an unchanged one (any spelling) is recognised as such."""
    caller = (await start_sidecar()).caller
    first = await caller.upsert("AAAA", "example.com", "v6", ["2001:db8::1"])
    same = await caller.upsert("aaaa", "EXAMPLE.com.", "V6", ["2001:DB8:0:0::1", "2001:db8::1"])
    changed = await caller.upsert("AAAA", "example.com", "v6", ["2001:db8::2"])
    assert [first.body["message"], same.body["message"], changed.body["message"]] == [
        "Record created successfully",
        "Record unchanged (already up to date)",
        "Record updated successfully",
    ]
    assert same.body["record"]["values"] == ["2001:db8::1"]
    assert changed.body["record"] == {
        "type": "AAAA",
        "domain": "example.com",
        "subdomain": "v6",
        "fqdn": "v6.example.com",
        "values": ["2001:db8::2"],
        "ttl": 300,
    }


async def test_ttl_defaults_to_the_zone_then_300(start_sidecar: StartSidecar) -> None:
    """Without ttl the zone's default applies; the embedded default zone uses 300."""
    caller = (await start_sidecar()).caller
    assert (await caller.upsert("A", "example.com", "@", ["192.0.2.1"])).body["record"][
        "ttl"
    ] == 300
    zoned = make_runtime(
        {"acct": MemoryProvider()}, [(ZonePolicy(name="example.org", ttl=60), "acct")]
    )
    caller = (await start_sidecar(runtime=zoned)).caller
    reply = await caller.upsert("A", "example.org", "@", ["192.0.2.1"])
    assert reply.body["record"]["ttl"] == 60


async def test_apex_and_wildcard_names(start_sidecar: StartSidecar) -> None:
    """'@' and empty mean the apex (fqdn = domain); '*' works as the leftmost label."""
    caller = (await start_sidecar()).caller
    apex = await caller.upsert("TXT", "example.com", "", ["v=spf1 -all"])
    assert apex.body["record"]["fqdn"] == "example.com"
    assert apex.body["record"]["subdomain"] == "@"
    assert (await caller.call("GET", "/records/TXT/example.com/@")).body["record"]["values"] == [
        "v=spf1 -all"
    ]
    wild = await caller.upsert("CNAME", "example.com", "*.apps", ["Ingress.Example.NET."])
    assert wild.body["record"]["fqdn"] == "*.apps.example.com"
    assert wild.body["record"]["values"] == ["ingress.example.net"]
    assert (await caller.call("GET", "/records/CNAME/example.com/*.apps")).status == 200


async def test_internationalised_names_become_punycode(start_sidecar: StartSidecar) -> None:
    """A Unicode domain is stored and answered in IDNA form, by body and by path."""
    caller = (await start_sidecar()).caller
    reply = await caller.upsert("A", "Bücher.example", "straße", ["192.0.2.7"])
    assert reply.body["record"]["domain"] == "xn--bcher-kva.example"
    assert (
        reply.body["record"]["fqdn"] == "xn--strae-oqa.xn--bcher-kva.example"
    )  # IDNA 2008: ß kept
    got = await caller.call("GET", "/records/A/bücher.example/straße")
    assert got.body["record"]["values"] == ["192.0.2.7"]


async def test_every_record_type_round_trips(start_sidecar: StartSidecar) -> None:
    """A, AAAA, CNAME, TXT, MX, SRV, CAA, NS: stored in canonical form and read back."""
    caller = (await start_sidecar()).caller
    cases = {
        "A": (["192.0.2.1"], ["192.0.2.1"]),
        "AAAA": (["2001:DB8::0001"], ["2001:db8::1"]),
        "CNAME": (["Target.Example.NET."], ["target.example.net"]),
        "TXT": (["v=spf1 -all", "hello world"], ["v=spf1 -all", "hello world"]),
        "MX": (
            ["10 Mail.Example.com.", "20 backup.example.com"],
            ["10 mail.example.com", "20 backup.example.com"],
        ),
        "SRV": (["10 5 5060 SIP.example.com."], ["10 5 5060 sip.example.com"]),
        "CAA": (
            ['0 ISSUE "letsencrypt.org"', "128 iodef mailto:ops@example.com"],
            ['0 issue "letsencrypt.org"', '128 iodef "mailto:ops@example.com"'],
        ),
        "NS": (["NS1.example.net."], ["ns1.example.net"]),
    }
    for kind, (given, stored) in cases.items():
        name = "alias" if kind == "CNAME" else f"t-{kind.lower()}"
        reply = await caller.upsert(kind, "example.com", name, given)
        assert reply.status == 200, (kind, reply.body)
        got = await caller.call("GET", f"/records/{kind}/example.com/{name}")
        assert got.body["record"]["values"] == stored, kind


# --- one test per row of SPEC's error-code table -------------------------------------------


async def test_invalid_request(start_sidecar: StartSidecar) -> None:
    """400 INVALID_REQUEST: not JSON, wrong shape, unknown operation."""
    caller = (await start_sidecar()).caller
    not_json = await caller.call("POST", "/records", raw=b"{not json")
    shape = await caller.call("POST", "/records", {"record": {"type": "A"}, "operation": "upsert"})
    operation = await caller.call(
        "POST", "/records", {"record": GUIDE_RECORD, "operation": "replace"}
    )
    assert [r.status for r in (not_json, shape, operation)] == [400, 400, 400]
    assert {r.code for r in (not_json, shape, operation)} == {"INVALID_REQUEST"}
    assert not_json.message == "The body is not valid JSON (UTF-8)."
    assert shape.body["error"]["details"]["field"] == "record.domain"
    assert "replace" in operation.message


async def test_invalid_record(start_sidecar: StartSidecar) -> None:
    """400 INVALID_RECORD: unsupported type, bad address, bad TTL, bad name."""
    caller = (await start_sidecar()).caller
    replies = [
        await caller.upsert("PTR", "example.com", "www", ["x.example.com"]),
        await caller.upsert("A", "example.com", "www", ["300.1.1.1"]),
        await caller.upsert("A", "example.com", "www", ["192.0.2.1"], ttl=0),
        await caller.upsert("A", "exa mple.com", "www", ["192.0.2.1"]),
    ]
    assert [(r.status, r.code) for r in replies] == [(400, "INVALID_RECORD")] * 4
    assert "Unsupported record type 'PTR'" in replies[0].message
    assert "'300.1.1.1'" in replies[1].message
    assert "TTL" in replies[2].message
    assert "exa mple.com" in replies[3].message


async def test_auth_failed(start_sidecar: StartSidecar) -> None:
    """401 AUTH_FAILED: an unsigned request to a server with a secret."""
    settings = make_settings(hmac_secret=SecretStr(SECRET.decode()))
    caller = (await start_sidecar(settings, secret=SECRET)).caller
    reply = await caller.call("GET", "/health", sign=False)
    assert (reply.status, reply.code) == (401, "AUTH_FAILED")


async def test_domain_not_allowed(start_sidecar: StartSidecar) -> None:
    """403 DOMAIN_NOT_ALLOWED: no zone covers the name, or the client may not change it."""
    client = Client.fixed("home", Algorithm.SHA256, (SECRET,), zones=("lab.example.com",))
    caller = (
        await start_sidecar(
            runtime=make_runtime(
                {"acct": MemoryProvider()}, [("example.com", "acct")], clients=(client,)
            ),
            secret=SECRET,
        )
    ).caller
    outside = await caller.upsert("A", "example.org", "www", ["192.0.2.1"])
    forbidden = await caller.upsert("A", "example.com", "www", ["192.0.2.1"])
    forbidden_get = await caller.call("GET", "/records/A/example.com/www")
    allowed = await caller.upsert("A", "example.com", "x.lab", ["192.0.2.1"])
    assert [(r.status, r.code) for r in (outside, forbidden, forbidden_get)] == [
        (403, "DOMAIN_NOT_ALLOWED")
    ] * 3
    assert outside.message == "No zone in the routing table covers www.example.org."
    assert "'home' may not change www.example.com" in forbidden.message
    assert allowed.status == 200


async def test_record_not_found(start_sidecar: StartSidecar) -> None:
    """404 RECORD_NOT_FOUND: GET of an absent record (another type at the name does not count)."""
    caller = (await start_sidecar()).caller
    await caller.upsert("A", "example.com", "www", ["192.0.2.1"])
    reply = await caller.call("GET", "/records/AAAA/example.com/www")
    assert (reply.status, reply.code) == (404, "RECORD_NOT_FOUND")
    assert reply.message == "No AAAA record exists at www.example.com."


async def test_not_found_and_method_not_allowed(start_sidecar: StartSidecar) -> None:
    """404 NOT_FOUND for an unknown path and 405 METHOD_NOT_ALLOWED, both with JSON bodies."""
    settings = make_settings(hmac_secret=SecretStr(SECRET.decode()))
    caller = (await start_sidecar(settings, secret=SECRET)).caller
    missing = await caller.call("GET", "/nope")
    wrong = await caller.call("PUT", "/records", {"x": 1})
    assert (missing.status, missing.code) == (404, "NOT_FOUND")
    assert (wrong.status, wrong.code) == (405, "METHOD_NOT_ALLOWED")
    assert missing.headers["Content-Type"].startswith("application/json")
    assert wrong.headers["Allow"] == "POST"


async def test_record_conflict(start_sidecar: StartSidecar) -> None:
    """409 RECORD_CONFLICT: a CNAME beside an A record, in either order."""
    caller = (await start_sidecar()).caller
    await caller.upsert("A", "example.com", "www", ["192.0.2.1"])
    cname = await caller.upsert("CNAME", "example.com", "www", ["target.example.net"])
    await caller.upsert("CNAME", "example.com", "alias", ["target.example.net"])
    beside = await caller.upsert("A", "example.com", "alias", ["192.0.2.1"])
    assert [(r.status, r.code) for r in (cname, beside)] == [(409, "RECORD_CONFLICT")] * 2
    assert "www.example.com already has A records" in cname.message


async def test_payload_too_large(start_sidecar: StartSidecar) -> None:
    """413 PAYLOAD_TOO_LARGE: a body over the 64 KiB default, answered in JSON."""
    caller = (await start_sidecar()).caller
    reply = await caller.call("POST", "/records", raw=b"x" * (64 * 1024 + 1))
    assert (reply.status, reply.code) == (413, "PAYLOAD_TOO_LARGE")
    assert reply.body["error"]["details"] == {"limit": 65536}


async def test_rate_limited_when_replay_cache_is_full(start_sidecar: StartSidecar) -> None:
    """429 RATE_LIMITED with Retry-After: the replay cache is full, so the request is refused."""
    settings = make_settings(hmac_secret=SecretStr(SECRET.decode()), replay_cache_size=2)
    caller = (await start_sidecar(settings, secret=SECRET)).caller
    assert (await caller.call("GET", "/health")).status == 200
    assert (await caller.call("GET", "/health")).status == 200
    full = await caller.call("GET", "/health")
    assert (full.status, full.code) == (429, "RATE_LIMITED")
    assert int(full.headers["Retry-After"]) >= 1
    assert "replay cache is full" in full.message


async def test_provider_error(start_sidecar: StartSidecar) -> None:
    """502 PROVIDER_ERROR: the provider rejected the call; its message is passed on."""
    failing = FailingProvider(ProviderError("Cloudflare said no (code 1004)."))
    caller = (
        await start_sidecar(runtime=make_runtime({"acct": failing}, [("example.com", "acct")]))
    ).caller
    reply = await caller.upsert("A", "example.com", "www", ["192.0.2.1"])
    assert (reply.status, reply.code, reply.message) == (
        502,
        "PROVIDER_ERROR",
        "Cloudflare said no (code 1004).",
    )


class _Unavailable(FailingProvider):
    """An account that cannot serve: every call and the health check say why."""

    def __init__(self, reason: str) -> None:
        super().__init__(ProviderUnavailable(reason))
        self.reason = reason

    async def health(self) -> Health:
        return Health(healthy=False, message=self.reason)


async def test_provider_unavailable(start_sidecar: StartSidecar) -> None:
    """503 PROVIDER_UNAVAILABLE: the account cannot serve; /health names it."""
    provider = _Unavailable("Account 'acct': credentials missing.")
    caller = (
        await start_sidecar(runtime=make_runtime({"acct": provider}, [("example.com", "acct")]))
    ).caller
    reply = await caller.call("DELETE", "/records/A/example.com/www")
    health = await caller.call("GET", "/health")
    assert (reply.status, reply.code) == (503, "PROVIDER_UNAVAILABLE")
    assert health.status == 503
    assert health.body["status"] == "unhealthy"
    assert (
        health.body["message"]
        == "Unhealthy accounts: acct (zones example.com): Account 'acct': credentials missing."
    )


async def test_internal_error_names_request_id(
    start_sidecar: StartSidecar, caplog: pytest.LogCaptureFixture
) -> None:
    """500 INTERNAL_ERROR: a bug is logged with a request id the message repeats; no traceback."""
    caller = (
        await start_sidecar(
            runtime=make_runtime(
                {"acct": FailingProvider(RuntimeError("boom /etc/x"))}, [("example.com", "acct")]
            )
        )
    ).caller
    reply = await caller.call(
        "GET", "/records/A/example.com/www", headers={"X-Request-Id": "rq-42"}
    )
    assert (reply.status, reply.code) == (500, "INTERNAL_ERROR")
    assert reply.message == "An internal error occurred; it was logged with request id rq-42."
    assert "boom" not in str(reply.body)
    assert reply.headers["X-Request-Id"] == "rq-42"
    logged = [r for r in caplog.records if r.getMessage() == "unhandled error"]
    assert len(logged) == 1
    assert logged[0].exc_info is not None


async def test_memory_snapshot_survives_restart(
    start_sidecar: StartSidecar, tmp_path: Path
) -> None:
    """With a snapshot file the embedded default keeps its records across a restart."""
    snapshot = tmp_path / "state" / "records.json"
    settings = make_settings(table={"memory_file": snapshot})
    first = (await start_sidecar(settings)).caller
    await first.upsert("MX", "example.com", "@", ["10 mail.example.com"])
    second = (await start_sidecar(settings)).caller
    got = await second.call("GET", "/records/MX/example.com/@")
    assert got.body["record"]["values"] == ["10 mail.example.com"]
    assert [p.name for p in snapshot.parent.iterdir()] == ["records.json"]  # no temp files left


async def test_unfinished_snapshot_writes_are_removed_at_start(
    start_sidecar: StartSidecar, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Temp files of a write killed midway (.NAME.json.XXXXXXXX) are removed at start, and
    logged; other files beside the snapshot are left alone."""
    snapshot = tmp_path / "records.json"
    tmp_path.joinpath(".records.json.k1ll3d_x").write_text('{"half": ')
    tmp_path.joinpath(".records.json.swp").write_text("an editor's")
    tmp_path.joinpath("notes.txt").write_text("mine")
    await start_sidecar(make_settings(table={"memory_file": snapshot}))
    assert sorted(p.name for p in snapshot.parent.iterdir()) == [".records.json.swp", "notes.txt"]
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        (
            f"memory provider removed 1 unfinished snapshot write(s) next to {snapshot}: "
            ".records.json.k1ll3d_x"
        )
    ]


async def test_health_says_when_the_snapshot_cannot_be_written(
    start_sidecar: StartSidecar, tmp_path: Path
) -> None:
    """/health is unhealthy, naming the account, while the snapshot cannot be written; it
    recovers by itself once it can."""
    blocker = tmp_path / "state"
    blocker.write_text("a file where the snapshot's directory should be")
    clock = FrozenClock()
    settings = make_settings(table={"memory_file": blocker / "records.json"})
    caller = (await start_sidecar(settings, clock=clock)).caller
    sick = await caller.call("GET", "/health")
    assert (sick.status, sick.body["status"], sick.body["message"]) == (
        503,
        "unhealthy",
        (
            "Unhealthy accounts: memory (every zone): The memory provider cannot write its "
            f"snapshot {blocker / 'records.json'} (File exists); changes are refused until it can."
        ),
    )
    refused = await caller.upsert("A", "example.com", "www", ["192.0.2.1"])
    assert (refused.status, refused.code) == (503, "PROVIDER_UNAVAILABLE")
    blocker.unlink()
    clock.advance(60)  # past the health cache
    assert (await caller.call("GET", "/health")).status == 200
    assert (await caller.upsert("A", "example.com", "www", ["192.0.2.1"])).status == 200
