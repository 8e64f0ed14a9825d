"""The Cloudflare provider end to end: webhook -> sidecar -> real SDK -> emulator over HTTP.

API-call counts are asserted from the emulator's own request counts.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from sidecar.clock import FrozenClock
from sidecar.config import loader
from sidecar.config.runtime import build
from sidecar.coordination.budget import Budget
from sidecar.errors import ProviderUnavailable
from sidecar.providers.base import ZonePolicy
from sidecar.providers.cloudflare.auth import Auth
from sidecar.providers.cloudflare.client import CloudflareApi, _make_client
from sidecar.providers.cloudflare.provider import CloudflareProvider
from sidecar.records import RecordKey
from tests.builders import local
from tests.conftest import (
    Caller,
    RunningEmulator,
    Sidecar,
    StartManagement,
    StartSidecar,
    eventually,
    make_settings,
)

MARK = "managed by dns-sidecar (owner=dns-sidecar)"
COM = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"


def table(
    cf: RunningEmulator, *, zone_extra: str = "", account_extra: str = "", org_extra: str = ""
) -> str:
    return f"""
version: 1
accounts:
  - name: personal
    provider: cloudflare
    apiToken: {{value: cf-token}}
    baseUrl: {cf.base_url}
{account_extra}
  - name: work
    provider: cloudflare
    apiKey: {{value: global-key}}
    email: ops@example.org
    baseUrl: {cf.base_url}
zones:
  - name: example.com
    account: personal
{zone_extra}
  - name: example.org
    account: work
{org_extra}
"""


async def started_for(
    start_sidecar: StartSidecar, cf: RunningEmulator, yaml_text: str, **settings: Any
) -> Sidecar:
    cf.emulator.add_key("ops@example.org", "global-key")
    spec = loader.parse(yaml_text, "test.yaml")
    runtime = build(spec, make_settings(**settings), source="test.yaml", coordination=local())
    return await start_sidecar(runtime=runtime)


async def sidecar_for(
    start_sidecar: StartSidecar, cf: RunningEmulator, yaml_text: str, **settings: Any
) -> Caller:
    return (await started_for(start_sidecar, cf, yaml_text, **settings)).caller


async def warm(caller: Caller, cf: RunningEmulator, domain: str = "example.com") -> None:
    """Look the zone id up once (it is cached from then on) and reset the counts."""
    assert (await caller.call("GET", f"/records/A/{domain}/warm-up")).status == 404
    cf.emulator.stats.clear()


def contents(cf: RunningEmulator, zone: str, name: str) -> list[tuple[str, str, int, Any]]:
    return [
        (r["type"], r["content"], r["ttl"], r["comment"])
        for r in cf.records(zone)
        if r["name"] == name
    ]


async def test_record_set_lifecycle_and_call_counts(
    start_sidecar: StartSidecar, cf: RunningEmulator
) -> None:
    """Create (2 calls), unchanged (1 call, 0 writes), change (2), get (1), delete (2)."""
    caller = await sidecar_for(start_sidecar, cf, table(cf))
    await warm(caller, cf)

    created = await caller.upsert("A", "example.com", "www", ["192.0.2.1", "192.0.2.2"], ttl=600)
    assert created.body["message"] == "Record created successfully"
    assert cf.total() == 2
    assert cf.calls() == {
        "GET /zones/{zone_id}/dns_records": 1,
        "POST /zones/{zone_id}/dns_records/batch": 1,
    }
    assert contents(cf, "example.com", "www.example.com") == [
        ("A", "192.0.2.1", 600, MARK),
        ("A", "192.0.2.2", 600, MARK),
    ]
    ids = {r["content"]: r["id"] for r in cf.records("example.com")}

    cf.emulator.stats.clear()
    same = await caller.upsert("A", "example.com", "WWW", ["192.0.2.2", "192.0.2.1"], ttl=600)
    assert same.body["message"] == "Record unchanged (already up to date)"
    assert (cf.total(), cf.emulator.writes()) == (1, 0)

    cf.emulator.stats.clear()
    changed = await caller.upsert("A", "example.com", "www", ["192.0.2.1", "192.0.2.3"], ttl=600)
    assert changed.body["message"] == "Record updated successfully"
    assert cf.total() == 2
    after = {r["content"]: r["id"] for r in cf.records("example.com")}
    assert after == {"192.0.2.1": ids["192.0.2.1"], "192.0.2.3": ids["192.0.2.2"]}  # in place

    cf.emulator.stats.clear()
    got = await caller.call("GET", "/records/A/example.com/www")
    assert got.body["record"]["values"] == ["192.0.2.1", "192.0.2.3"]
    assert got.body["record"]["ttl"] == 600
    assert cf.total() == 1

    cf.emulator.stats.clear()
    deleted = await caller.call("DELETE", "/records/A/example.com/www")
    assert deleted.body["message"] == "Record deleted successfully"
    assert cf.total() == 2
    assert cf.records("example.com") == []
    again = await caller.call("DELETE", "/records/A/example.com/www")
    assert again.body["message"] == "Record does not exist (already deleted)"


async def test_every_type_round_trips_without_loops(
    start_sidecar: StartSidecar, cf: RunningEmulator
) -> None:
    """Every type is written in Cloudflare's shape, read back equal; re-upserts write nothing."""
    caller = await sidecar_for(start_sidecar, cf, table(cf))
    cases = {
        "AAAA": ["2001:db8::1", "2001:DB8:0:0::2"],
        "CNAME": ["Target.Example.NET."],
        "TXT": ["v=spf1 -all", 'with "quotes"'],
        "MX": ["10 mx1.example.com", "20 mx2.example.com."],
        "SRV": ["10 5 5060 sip.example.com"],
        "CAA": ['0 issue "letsencrypt.org"', '0 iodef "mailto:ops@example.com"'],
        "NS": ["ns1.example.net", "ns2.example.net"],
    }
    for kind, values in cases.items():
        sub = "alias" if kind == "CNAME" else f"t-{kind.lower()}"
        assert (await caller.upsert(kind, "example.com", sub, values)).status == 200, kind
        cf.emulator.stats.clear()
        again = await caller.upsert(kind, "example.com", sub, values)
        assert again.body["message"] == "Record unchanged (already up to date)", kind
        assert cf.emulator.writes() == 0, kind
        got = await caller.call("GET", f"/records/{kind}/example.com/{sub}")
        assert sorted(got.body["record"]["values"]) == sorted(again.body["record"]["values"])
    srv = next(r for r in cf.records("example.com") if r["type"] == "SRV")
    assert srv["data"] == {"priority": 10, "weight": 5, "port": 5060, "target": "sip.example.com"}
    mx = sorted(
        (r["priority"], r["content"]) for r in cf.records("example.com") if r["type"] == "MX"
    )
    assert mx == [(10, "mx1.example.com"), (20, "mx2.example.com")]


def foreign(cf: RunningEmulator, kind: str, name: str, content: str, **extra: Any) -> None:
    zone = cf.emulator.state.zones[COM]
    cf.emulator.state.create(zone, {"type": kind, "name": name, "content": content, **extra})


async def test_strict_ownership_refuses_and_leaves_foreign_records(
    start_sidecar: StartSidecar, cf: RunningEmulator
) -> None:
    """Strict: an upsert over unmarked records is 409 naming them; delete leaves them."""
    caller = await sidecar_for(start_sidecar, cf, table(cf))
    foreign(cf, "A", "www", "198.51.100.7")
    refused = await caller.upsert("A", "example.com", "www", ["192.0.2.1"])
    assert (refused.status, refused.code) == (409, "RECORD_CONFLICT")
    assert "198.51.100.7" in refused.message
    assert "ownership: adopt" in refused.message
    assert contents(cf, "example.com", "www.example.com") == [("A", "198.51.100.7", 1, None)]
    deleted = await caller.call("DELETE", "/records/A/example.com/www")
    assert deleted.status == 200
    assert deleted.body == {
        "success": True,
        "message": "No record managed by dns-sidecar was there to delete; left 1 record(s) not "
        "managed by dns-sidecar in place: A 198.51.100.7",
        "left": ["A 198.51.100.7"],
    }
    assert contents(cf, "example.com", "www.example.com") == [("A", "198.51.100.7", 1, None)]


async def test_adopt_takes_foreign_records_over(
    start_sidecar: StartSidecar, cf: RunningEmulator
) -> None:
    """Adopt: foreign records at the name become ours (marked), values fixed in place."""
    caller = await sidecar_for(start_sidecar, cf, table(cf, zone_extra="    ownership: adopt"))
    foreign(cf, "A", "www", "198.51.100.7")
    foreign(cf, "TXT", "www", '"quoted by someone"')
    reply = await caller.upsert("A", "example.com", "www", ["198.51.100.7", "192.0.2.1"], ttl=300)
    assert reply.body["message"] == "Record updated successfully"
    txt = await caller.upsert("TXT", "example.com", "www", ["quoted by someone"], ttl=1)
    assert txt.status == 200
    assert contents(cf, "example.com", "www.example.com") == [
        ("A", "192.0.2.1", 300, MARK),
        ("A", "198.51.100.7", 300, MARK),
        ("TXT", '"quoted by someone"', 1, MARK),  # same value, only the marker was added
    ]


async def test_ownership_off_changes_without_marker_checks(
    start_sidecar: StartSidecar, cf: RunningEmulator
) -> None:
    """Off: records are changed whoever made them, and their comments are left alone."""
    caller = await sidecar_for(start_sidecar, cf, table(cf, zone_extra="    ownership: off"))
    foreign(cf, "A", "www", "198.51.100.7", comment="hand-made")
    reply = await caller.upsert("A", "example.com", "www", ["192.0.2.9"], ttl=300)
    assert reply.status == 200
    assert contents(cf, "example.com", "www.example.com") == [("A", "192.0.2.9", 300, "hand-made")]
    assert (await caller.call("DELETE", "/records/A/example.com/www")).body["message"] == (
        "Record deleted successfully"
    )
    assert cf.records("example.com") == []


async def test_cname_conflicts_name_what_is_in_the_way(
    start_sidecar: StartSidecar, cf: RunningEmulator
) -> None:
    """A CNAME beside an A (either way round) is 409 naming the record, and nothing is written."""
    caller = await sidecar_for(start_sidecar, cf, table(cf))
    await caller.upsert("A", "example.com", "www", ["192.0.2.1"])
    await caller.upsert("CNAME", "example.com", "alias", ["target.example.net"])
    cf.emulator.stats.clear()
    cname = await caller.upsert("CNAME", "example.com", "www", ["target.example.net"])
    a = await caller.upsert("A", "example.com", "alias", ["192.0.2.1"])
    assert (cname.status, cname.code) == (409, "RECORD_CONFLICT")
    assert cname.message == (
        "Cannot put CNAME at www.example.com: A 192.0.2.1 already there, and a CNAME cannot "
        "share its name with other records."
    )
    assert "CNAME target.example.net already there" in a.message
    assert cf.emulator.writes() == 0


async def test_proxied_zone_means_automatic_ttl_and_no_loop(
    start_sidecar: StartSidecar, cf: RunningEmulator
) -> None:
    """In a proxied zone A/CNAME are proxied with TTL 1; TXT is not proxied; no update loops."""
    caller = await sidecar_for(start_sidecar, cf, table(cf, zone_extra="    proxied: true"))
    a = await caller.upsert("A", "example.com", "www", ["192.0.2.1"], ttl=300)
    txt = await caller.upsert("TXT", "example.com", "www", ["hello"], ttl=300)
    assert (a.body["record"]["ttl"], txt.body["record"]["ttl"]) == (1, 300)
    proxied = {(r["type"], r["proxied"], r["ttl"]) for r in cf.records("example.com")}
    assert proxied == {("A", True, 1), ("TXT", False, 300)}
    cf.emulator.stats.clear()
    again = await caller.upsert("A", "example.com", "www", ["192.0.2.1"], ttl=300)
    assert again.body["message"] == "Record unchanged (already up to date)"
    assert cf.emulator.writes() == 0


async def test_two_accounts_two_auth_modes_despite_environment(
    start_sidecar: StartSidecar, cf: RunningEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A token account and a key+email account at once, with CLOUDFLARE_* set to other values."""
    monkeypatch.setenv("CLOUDFLARE_EMAIL", "intruder@example.net")
    monkeypatch.setenv("CLOUDFLARE_API_KEY", "intruder-key")
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", "intruder-token")
    caller = await sidecar_for(start_sidecar, cf, table(cf))
    com = await caller.upsert("A", "example.com", "www", ["192.0.2.1"])
    org = await caller.upsert("A", "example.org", "www", ["192.0.2.2"])
    assert (com.status, org.status) == (200, 200), (com.body, org.body)
    assert [r["content"] for r in cf.records("example.org")] == ["192.0.2.2"]


def test_sdk_client_holds_only_its_own_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK client sends exactly the account's auth headers, whatever CLOUDFLARE_* say."""
    monkeypatch.setenv("CLOUDFLARE_EMAIL", "intruder@example.net")
    monkeypatch.setenv("CLOUDFLARE_API_KEY", "intruder-key")
    monkeypatch.setenv("CLOUDFLARE_BASE_URL", "http://intruder.invalid")
    token = _make_client(Auth(token="t"), "http://127.0.0.1:1/client/v4", 5)
    key = _make_client(Auth(key="k", email="e@x.y"), "http://127.0.0.1:1/client/v4", 5)
    assert token.auth_headers == {"Authorization": "Bearer t"}
    assert "X-Auth-Email" not in {k for k, v in token.default_headers.items() if isinstance(v, str)}
    assert {k: v for k, v in key.default_headers.items() if k.startswith("X-Auth")} == {
        "X-Auth-Key": "k",
        "X-Auth-Email": "e@x.y",
    }
    assert str(token.base_url) == "http://127.0.0.1:1/client/v4/"


async def test_cloudflare_429_fails_fast_with_retry_after(
    start_sidecar: StartSidecar, cf: RunningEmulator
) -> None:
    """Cloudflare's 429 becomes RATE_LIMITED with its Retry-After; the next call is not sent."""
    caller = await sidecar_for(start_sidecar, cf, table(cf))
    await warm(caller, cf)
    cf.emulator.fail(429, retry_after=30)
    first = await caller.upsert("A", "example.com", "www", ["192.0.2.1"])
    assert (first.status, first.code, first.headers["Retry-After"]) == (429, "RATE_LIMITED", "30")
    calls = cf.total()
    second = await caller.call("GET", "/records/A/example.com/www")
    assert (second.status, second.code) == (429, "RATE_LIMITED")
    assert 1 <= int(second.headers["Retry-After"]) <= 30
    assert cf.total() == calls  # failed fast: nothing sent
    other = await caller.upsert("A", "example.org", "www", ["192.0.2.1"])
    assert other.status == 200  # the other account is not blocked


async def test_client_side_budget(
    start_sidecar: StartSidecar, cf: RunningEmulator, start_management: StartManagement
) -> None:
    """A spent budget answers RATE_LIMITED without calling Cloudflare; /status shows it."""
    sidecar = await started_for(
        start_sidecar, cf, table(cf, account_extra="    rateLimit: {requests: 3, perSeconds: 300}")
    )
    caller = sidecar.caller
    await warm(caller, cf)  # 1 zone lookup + 1 list
    assert (await caller.call("GET", "/records/A/example.com/www")).status == 404  # 3rd call
    limited = await caller.call("GET", "/records/A/example.com/www")
    assert (limited.status, limited.code) == (429, "RATE_LIMITED")
    assert "budget of 3 Cloudflare requests per 300 s" in limited.message
    assert cf.total() == 1
    status = (await (await start_management(sidecar)).call("GET", "/status")).body
    assert status["accounts"]["personal"]["budget"] == {
        "requests": 3,
        "perSeconds": 300.0,
        "remaining": 0,
        "blockedForSeconds": 0.0,
    }


async def test_server_error_and_timeout_are_unavailable(
    start_sidecar: StartSidecar, cf: RunningEmulator
) -> None:
    """5xx and no answer in time are PROVIDER_UNAVAILABLE; the sidecar does not hang."""
    caller = await sidecar_for(start_sidecar, cf, table(cf), server={"provider_timeout": 0.3})
    await warm(caller, cf)
    cf.emulator.fail(502)
    failed = await caller.call("GET", "/records/A/example.com/www")
    assert (failed.status, failed.code) == (503, "PROVIDER_UNAVAILABLE")
    assert "HTTP 502" in failed.message
    cf.emulator.latency = 2.0
    slow = await caller.call("GET", "/records/A/example.com/www")
    assert (slow.status, slow.code) == (503, "PROVIDER_UNAVAILABLE")
    assert "did not answer within 0.3 s" in slow.message


async def test_rejections_become_invalid_record_or_provider_error(
    start_sidecar: StartSidecar, cf: RunningEmulator
) -> None:
    """A TTL Cloudflare cannot take is INVALID_RECORD before any call; bad credentials are 502."""
    caller = await sidecar_for(start_sidecar, cf, table(cf))
    await warm(caller, cf)
    ttl = await caller.upsert("A", "example.com", "www", ["192.0.2.1"], ttl=30)
    assert (ttl.status, ttl.code) == (400, "INVALID_RECORD")
    assert cf.total() == 0
    cf.emulator.tokens.clear()
    denied = await caller.call("GET", "/records/A/example.com/www")
    assert (denied.status, denied.code) == (502, "PROVIDER_ERROR")
    assert "Authentication error (code 10000)" in denied.message


async def test_concurrent_writes_to_one_name_are_serialised(
    start_sidecar: StartSidecar, cf: RunningEmulator
) -> None:
    """Ten concurrent upserts of one name leave exactly one of them, with no duplicates."""
    caller = await sidecar_for(start_sidecar, cf, table(cf))
    await warm(caller, cf)
    sets = [[f"192.0.2.{i}", f"192.0.2.{i + 100}"] for i in range(10)]
    replies = await asyncio.gather(*(caller.upsert("A", "example.com", "www", s) for s in sets))
    assert {r.status for r in replies} == {200}
    stored = sorted(r["content"] for r in cf.records("example.com"))
    assert stored in [sorted(s) for s in sets]


async def test_zone_scoped_token_needs_zone_id(
    start_sidecar: StartSidecar, cf: RunningEmulator
) -> None:
    """A token that cannot list zones works with zoneId; without it the error says to set it."""
    cf.emulator.add_token("scoped", zones=["example.com"], can_list_zones=False)
    scoped = table(cf).replace("{value: cf-token}", "{value: scoped}")
    with_id = scoped.replace(
        "    account: personal\n", f"    account: personal\n    zoneId: {COM}\n"
    )
    caller = await sidecar_for(start_sidecar, cf, with_id)
    assert (await caller.upsert("A", "example.com", "www", ["192.0.2.1"])).status == 200
    caller = await sidecar_for(start_sidecar, cf, scoped)
    reply = await caller.upsert("A", "example.com", "www", ["192.0.2.1"])
    assert (reply.status, reply.code) == (502, "PROVIDER_ERROR")
    assert reply.message.endswith(
        "The token verifies but cannot look zones up, as with a zone-scoped token: set zoneId "
        "for example.com in the routing table."
    )


async def test_wrong_token_gets_no_zone_scoped_hint(
    start_sidecar: StartSidecar, cf: RunningEmulator
) -> None:
    """A token that does not verify is called refused, without the zoneId hint (which is for
    tokens that verify but cannot list zones)."""
    wrong = table(cf).replace("{value: cf-token}", "{value: not-a-token}")
    caller = await sidecar_for(start_sidecar, cf, wrong)
    reply = await caller.upsert("A", "example.com", "www", ["192.0.2.1"])
    assert (reply.status, reply.code, reply.message) == (
        502,
        "PROVIDER_ERROR",
        (
            "Cloudflare account 'personal': Cloudflare refused the credentials or their "
            "permissions when asked to list zones: Authentication error (code 10000)."
        ),
    )


async def test_zone_id_is_looked_up_once(start_sidecar: StartSidecar, cf: RunningEmulator) -> None:
    """Concurrent first requests share one zone lookup; later ones use the cache."""
    caller = await sidecar_for(start_sidecar, cf, table(cf))
    await asyncio.gather(*(caller.call("GET", f"/records/A/example.com/n{i}") for i in range(5)))
    await caller.call("GET", "/records/A/example.com/again")
    assert cf.calls()["GET /zones"] == 1


async def test_read_cache_sweep_costs_calls_per_zone(
    start_sidecar: StartSidecar, cf: RunningEmulator
) -> None:
    """500 GETs over 4 zones with the read cache: at most 8 calls (4 lookups + 4 listings)."""
    for name in ("example.net", "example.info"):
        cf.emulator.state.add_zone(name)
    yaml_text = table(cf, account_extra="    readCacheSeconds: 60") + "".join(
        f"  - name: {name}\n    account: personal\n" for name in ("example.net", "example.info")
    )
    caller = await sidecar_for(
        start_sidecar, cf, yaml_text.replace("    account: work\n", "    account: personal\n")
    )
    zones = ["example.com", "example.org", "example.net", "example.info"]
    for zone in zones:
        for i in range(5):
            await caller.upsert("A", zone, f"h{i}", [f"192.0.2.{i}"])
    cf.emulator.stats.clear()
    found = 0
    for i in range(500):
        reply = await caller.call("GET", f"/records/A/{zones[i % 4]}/h{i % 7}")
        found += reply.status == 200
    assert found == 500 * 5 // 7 + 1  # h0..h4 exist, h5 and h6 do not
    assert cf.total() <= 8
    assert cf.calls()["GET /zones/{zone_id}/dns_records"] == 4
    # our own write invalidates the zone's cached copy
    await caller.upsert("A", "example.com", "h9", ["192.0.2.9"])
    assert (await caller.call("GET", "/records/A/example.com/h9")).status == 200


async def test_large_zone_is_read_across_pages(cf: RunningEmulator) -> None:
    """A 250-record zone is read in full over three pages of 100, and no page past the end."""
    zone = cf.emulator.state.zones[COM]
    for i in range(250):
        cf.emulator.state.create(zone, {"type": "A", "name": f"h{i}", "content": "192.0.2.1"})
    clock = FrozenClock()
    api = CloudflareApi(
        "p",
        lambda: Auth(token="cf-token"),
        Budget("p", 100, 300, clock),
        base_url=cf.base_url,
        list_page=100,
    )
    coordination = local(clock)
    provider = CloudflareProvider(
        api,
        clock,
        locks=coordination.locks,
        versions=coordination.versions,
        read_cache_seconds=60,
    )
    policy = ZonePolicy(name="example.com", zone_id=COM)
    try:
        found = await provider.get(policy, RecordKey.parse("A", "example.com", "h249"))
    finally:
        await provider.aclose()
    assert found is not None
    assert found.values == ("192.0.2.1",)
    assert cf.calls() == {"GET /zones/{zone_id}/dns_records": 3}


async def test_health_is_cached_and_names_failing_accounts(
    start_sidecar: StartSidecar, cf: RunningEmulator
) -> None:
    """/health verifies the token once per cache period; a failing account is named."""
    caller = await sidecar_for(start_sidecar, cf, table(cf))
    assert (await caller.call("GET", "/health")).status == 200
    assert (await caller.call("GET", "/health")).status == 200
    assert cf.calls() == {"GET /user/tokens/verify": 1, "GET /zones": 1}
    caller = await sidecar_for(start_sidecar, cf, table(cf).replace("global-key}", "wrong}"))
    sick = await caller.call("GET", "/health")
    assert sick.status == 503
    assert sick.body["message"] == (
        "Unhealthy accounts: work (zones example.org): Cloudflare account 'work': Cloudflare "
        "refused the credentials or their permissions when asked to list zones: Authentication "
        "error (code 10000)."
    )


async def test_missing_credential_makes_only_that_account_unavailable(
    start_sidecar: StartSidecar, cf: RunningEmulator
) -> None:
    """An unset token variable is 503 naming the variable; the other account keeps working."""
    caller = await sidecar_for(
        start_sidecar, cf, table(cf).replace("{value: cf-token}", "{env: CF_TOKEN_UNSET}")
    )
    reply = await caller.upsert("A", "example.com", "www", ["192.0.2.1"])
    assert (reply.status, reply.code) == (503, "PROVIDER_UNAVAILABLE")
    assert reply.message == (
        "Account 'personal': The credential environment variable CF_TOKEN_UNSET is empty or unset."
    )
    assert (await caller.upsert("A", "example.org", "www", ["192.0.2.1"])).status == 200


async def test_pages_capped_below_the_request_are_all_read(
    start_sidecar: StartSidecar, cf: RunningEmulator
) -> None:
    """Cloudflare serving 100 records a page (the sidecar asks for 5 000): a GET of 150 values
    reads both pages, and an upsert diffs against all 150, leaving no stale values behind."""
    cf.emulator.records_per_page = 100
    zone = cf.emulator.state.zones[COM]
    first = [f"192.0.2.{i}" for i in range(1, 151)]
    for address in first:
        record = {"type": "A", "name": "www", "content": address, "comment": MARK}
        cf.emulator.state.create(zone, record)
    caller = await sidecar_for(start_sidecar, cf, table(cf))
    await warm(caller, cf)

    got = await caller.call("GET", "/records/A/example.com/www")
    assert sorted(got.body["record"]["values"]) == sorted(first)
    assert cf.calls() == {"GET /zones/{zone_id}/dns_records": 2}

    cf.emulator.stats.clear()
    second = first[50:]  # the last 100: 50 values to delete, all of them on the first page
    updated = await caller.upsert("A", "example.com", "www", second)
    assert updated.body["message"] == "Record updated successfully"
    assert sorted(r["content"] for r in cf.records("example.com")) == sorted(second)
    assert cf.calls() == {
        "GET /zones/{zone_id}/dns_records": 2,
        "POST /zones/{zone_id}/dns_records/batch": 1,
    }


@pytest.mark.parametrize(
    ("info", "page", "count", "seen", "more"),
    [
        ({"page": 1, "per_page": 100, "count": 100, "total_pages": 2}, 1, 100, 100, True),
        ({"page": 2, "per_page": 100, "count": 50, "total_pages": 2}, 2, 50, 150, False),
        ({"per_page": 100, "count": 100, "total_count": 150}, 1, 100, 100, True),
        ({"per_page": 100, "count": 100, "total_count": 100}, 1, 100, 100, False),
        ({"per_page": 100, "count": 100}, 1, 100, 100, True),  # a full page of the server's size
        ({"per_page": 100, "count": 40}, 1, 40, 40, False),
        (None, 1, 3, 3, True),  # no result_info: read on until an empty page
        (None, 2, 0, 3, False),
    ],
)
def test_result_info_decides_whether_a_page_follows(
    info: dict[str, int] | None, page: int, count: int, seen: int, more: bool
) -> None:
    """total_pages first, then total_count, then the echoed per_page; nothing: until empty."""
    from sidecar.providers.cloudflare.client import _more_pages  # noqa: PLC0415 - one seam

    assert _more_pages(info, page, count, seen) is more


async def test_refused_connection_is_called_refused(
    start_sidecar: StartSidecar, cf: RunningEmulator
) -> None:
    """Nothing listening at the API's address: "connection refused", not a timeout."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}/client/v4"
    caller = await sidecar_for(start_sidecar, cf, table(cf).replace(cf.base_url, closed, 1))
    reply = await caller.call("GET", "/records/A/example.com/www")
    assert (reply.status, reply.code, reply.message) == (
        503,
        "PROVIDER_UNAVAILABLE",
        (
            f"Cloudflare account 'personal' could not be reached at {closed} to list zones: "
            "connection refused."
        ),
    )


async def test_batch_timeout_says_it_may_have_been_applied(
    start_sidecar: StartSidecar, cf: RunningEmulator
) -> None:
    """A batch answered too late may still be applied: the message says so, and GET shows it."""
    caller = await sidecar_for(start_sidecar, cf, table(cf), server={"provider_timeout": 0.2})
    await warm(caller, cf)
    cf.emulator.delay(0.5, path="/batch")
    reply = await caller.upsert("A", "example.com", "www", ["192.0.2.1"])
    assert (reply.status, reply.code, reply.message) == (
        503,
        "PROVIDER_UNAVAILABLE",
        (
            "Cloudflare account 'personal' did not answer within 0.2 s when asked to apply the DNS "
            "record batch. The batch may still have been applied: a GET shows what is there now, "
            "and the operator's retry of the upsert converges either way."
        ),
    )

    async def applied() -> bool:
        got = await caller.call("GET", "/records/A/example.com/www")
        return got.status == 200 and got.body["record"]["values"] == ["192.0.2.1"]

    await eventually(applied)


async def test_a_timed_out_batch_that_was_applied_does_not_leave_the_read_cache_stale(
    start_sidecar: StartSidecar, cf: RunningEmulator
) -> None:
    """Read cache on: a batch that timed out but was applied, then an unchanged retry: GET
    shows the new set, not the listing cached before the write."""
    yaml_text = table(cf, account_extra="    readCacheSeconds: 60")
    caller = await sidecar_for(start_sidecar, cf, yaml_text, server={"provider_timeout": 1.0})
    assert (await caller.upsert("A", "example.com", "www", ["192.0.2.1"])).status == 200
    cached = await caller.call("GET", "/records/A/example.com/www")
    assert cached.body["record"]["values"] == ["192.0.2.1"]
    cf.emulator.delay(1.5, path="/batch")  # past the timeout, then applied
    late = await caller.upsert("A", "example.com", "www", ["192.0.2.2"])
    assert (late.status, late.code) == (503, "PROVIDER_UNAVAILABLE")
    await eventually(lambda: [r["content"] for r in cf.records("example.com")] == ["192.0.2.2"])
    retry = await caller.upsert("A", "example.com", "www", ["192.0.2.2"])
    assert retry.body["message"] == "Record unchanged (already up to date)"
    got = await caller.call("GET", "/records/A/example.com/www")
    assert (got.status, got.body["record"]["values"]) == (200, ["192.0.2.2"])


async def test_a_call_is_bounded_as_a_whole_not_per_read() -> None:
    """An API that trickles its answer a byte at a time (each read within the SDK's per-read
    timeout): the call still ends at the provider timeout, so a write never outlives its lease."""

    async def trickle(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        for byte in b'{"success": true, "errors": [], "messages": [], "result": []}':
            await response.write(bytes([byte]))
            await asyncio.sleep(0.05)  # the slow server under test, not synchronisation
        return response

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", trickle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    clock = FrozenClock()
    api = CloudflareApi(
        "p",
        lambda: Auth(token="cf-token"),
        Budget("p", 100, 300, clock),
        base_url=f"http://127.0.0.1:{server.port}/client/v4",
        timeout=0.3,
    )
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        with pytest.raises(ProviderUnavailable) as refused:
            await api.batch(COM, deletes=[], patches=[], posts=[])
    finally:
        await api.aclose()
        await server.close()
    assert loop.time() - started < 1.5  # the whole answer takes about 3 s
    assert refused.value.message.startswith(
        "Cloudflare account 'p' did not answer within 0.3 s when asked to apply the DNS record "
        "batch. The batch may still have been applied"
    )
