"""The Cloudflare emulator against Cloudflare's documented behaviour, over raw HTTP.

These pin the emulator itself, so that a sidecar test passing against it means something.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from sidecar.emulator.state import State
from tests.conftest import RunningEmulator

ZONE = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
TOKEN = {"Authorization": "Bearer cf-token"}


async def api(  # noqa: PLR0917 - method, path, body read best positionally here
    session: aiohttp.ClientSession,
    cf: RunningEmulator,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any], Any]:
    async with session.request(
        method, cf.base_url + path, json=body, headers=TOKEN if headers is None else headers
    ) as reply:
        return reply.status, await reply.json(), reply.headers


def codes(body: dict[str, Any]) -> list[int]:
    return [error["code"] for error in body["errors"]]


async def test_envelope_and_fqdn_names(session: aiohttp.ClientSession, cf: RunningEmulator) -> None:
    """Created records come back in Cloudflare's envelope with FQDN names ('@' and relative)."""
    status, body, _ = await api(
        session,
        cf,
        "POST",
        f"/zones/{ZONE}/dns_records",
        {"type": "A", "name": "@", "content": "192.0.2.1", "ttl": 300},
    )
    assert status == 200
    assert (body["success"], body["errors"], body["messages"]) == (True, [], [])
    assert body["result"]["name"] == "example.com"
    _, body, _ = await api(
        session,
        cf,
        "POST",
        f"/zones/{ZONE}/dns_records",
        {"type": "TXT", "name": "www", "content": "hello"},
    )
    assert (body["result"]["name"], body["result"]["ttl"]) == ("www.example.com", 1)


async def test_filters_and_pagination(session: aiohttp.ClientSession, cf: RunningEmulator) -> None:
    """name / name.exact / type / content / comment filters; a page past the end is empty."""
    for i in range(12):
        await api(
            session,
            cf,
            "POST",
            f"/zones/{ZONE}/dns_records",
            {
                "type": "A",
                "name": "many",
                "content": f"192.0.2.{i}",
                "comment": "mine" if i % 2 else None,
            },
        )
    await api(
        session,
        cf,
        "POST",
        f"/zones/{ZONE}/dns_records",
        {"type": "TXT", "name": "many", "content": "x"},
    )
    base = f"/zones/{ZONE}/dns_records"
    _, body, _ = await api(session, cf, "GET", base + "?name=many.example.com&type=A&per_page=5")
    assert [len(body["result"]), body["result_info"]["total_count"]] == [5, 12]
    assert body["result_info"]["total_pages"] == 3
    _, last, _ = await api(
        session, cf, "GET", base + "?name.exact=many.example.com&type=A&per_page=5&page=3"
    )
    _, past, _ = await api(session, cf, "GET", base + "?name=many.example.com&per_page=5&page=9")
    assert (len(last["result"]), past["result"]) == (2, [])
    _, mine, _ = await api(session, cf, "GET", base + "?comment=mine")
    _, content, _ = await api(session, cf, "GET", base + "?content=192.0.2.3")
    _, txt, _ = await api(session, cf, "GET", base + "?name=MANY.example.com.&type=txt")
    assert (len(mine["result"]), len(content["result"]), len(txt["result"])) == (6, 1, 1)


async def test_record_crud(session: aiohttp.ClientSession, cf: RunningEmulator) -> None:
    """Create, get, PUT (replace), PATCH (merge) and DELETE a record; MX keeps its priority."""
    base = f"/zones/{ZONE}/dns_records"
    _, created, _ = await api(
        session,
        cf,
        "POST",
        base,
        {"type": "MX", "name": "@", "content": "mx.example.com", "priority": 10, "comment": "c"},
    )
    rid = created["result"]["id"]
    _, got, _ = await api(session, cf, "GET", f"{base}/{rid}")
    assert (got["result"]["content"], got["result"]["priority"]) == ("mx.example.com", 10)
    _, patched, _ = await api(session, cf, "PATCH", f"{base}/{rid}", {"priority": 20})
    assert (patched["result"]["priority"], patched["result"]["comment"]) == (20, "c")
    _, put, _ = await api(
        session,
        cf,
        "PUT",
        f"{base}/{rid}",
        {"type": "MX", "name": "@", "content": "mx2.example.com", "priority": 5},
    )
    assert (put["result"]["content"], put["result"]["comment"]) == ("mx2.example.com", None)
    status, deleted, _ = await api(session, cf, "DELETE", f"{base}/{rid}")
    assert (status, deleted["result"]) == (200, {"id": rid})
    status, gone, _ = await api(session, cf, "GET", f"{base}/{rid}")
    assert (status, codes(gone)) == (404, [81044])


async def test_structured_srv_and_caa(session: aiohttp.ClientSession, cf: RunningEmulator) -> None:
    """SRV and CAA take structured data; content is derived the way Cloudflare shows it."""
    base = f"/zones/{ZONE}/dns_records"
    _, srv, _ = await api(
        session,
        cf,
        "POST",
        base,
        {
            "type": "SRV",
            "name": "_sip._tcp",
            "data": {"priority": 10, "weight": 5, "port": 5060, "target": "sip.example.com"},
        },
    )
    _, caa, _ = await api(
        session,
        cf,
        "POST",
        base,
        {"type": "CAA", "name": "@", "data": {"flags": 0, "tag": "issue", "value": "ca.example"}},
    )
    assert (srv["result"]["content"], srv["result"]["priority"]) == ("5 5060 sip.example.com", 10)
    assert caa["result"]["content"] == '0 issue "ca.example"'


@pytest.mark.parametrize(
    ("record", "code"),
    [
        ({"type": "A", "name": "x", "content": "300.0.0.1"}, 9005),
        ({"type": "AAAA", "name": "x", "content": "192.0.2.1"}, 9006),
        ({"type": "TXT", "name": "x", "content": "t", "proxied": True}, 9004),
        ({"type": "A", "name": "x", "content": "192.0.2.1", "ttl": 30}, 9021),
        ({"type": "BOGUS", "name": "x", "content": "y"}, 9000),
    ],
)
async def test_validation_codes(
    session: aiohttp.ClientSession, cf: RunningEmulator, record: dict[str, Any], code: int
) -> None:
    """Bad addresses, unproxiable types, bad TTLs and unknown types get Cloudflare's codes."""
    status, body, _ = await api(session, cf, "POST", f"/zones/{ZONE}/dns_records", record)
    assert (status, codes(body), body["success"]) == (400, [code], False)


async def test_conflict_codes(session: aiohttp.ClientSession, cf: RunningEmulator) -> None:
    """81058 for an identical record, 81053 for a CNAME beside an A (either order)."""
    base = f"/zones/{ZONE}/dns_records"
    a = {"type": "A", "name": "www", "content": "192.0.2.1"}
    await api(session, cf, "POST", base, a)
    _, same, _ = await api(session, cf, "POST", base, a)
    _, cname, _ = await api(
        session, cf, "POST", base, {"type": "CNAME", "name": "www", "content": "t.example.net"}
    )
    await api(session, cf, "POST", base, {"type": "CNAME", "name": "c", "content": "t.example.net"})
    _, beside, _ = await api(session, cf, "POST", base, {**a, "name": "c"})
    assert (codes(same), codes(cname), codes(beside)) == ([81058], [81053], [81053])


async def test_batch_order_and_all_or_nothing(
    session: aiohttp.ClientSession, cf: RunningEmulator
) -> None:
    """Deletes run before posts (so a value can move); one failing item applies nothing."""
    base = f"/zones/{ZONE}/dns_records"
    _, one, _ = await api(
        session, cf, "POST", base, {"type": "A", "name": "b", "content": "192.0.2.1"}
    )
    rid = one["result"]["id"]
    status, moved, _ = await api(
        session,
        cf,
        "POST",
        base + "/batch",
        {
            "posts": [{"type": "A", "name": "b", "content": "192.0.2.1", "comment": "new"}],
            "deletes": [{"id": rid}],
        },
    )
    assert status == 200
    assert [r["comment"] for r in moved["result"]["posts"]] == ["new"]
    before = cf.records("example.com")
    status, failed, _ = await api(
        session,
        cf,
        "POST",
        base + "/batch",
        {
            "deletes": [{"id": moved["result"]["posts"][0]["id"]}],
            "posts": [
                {"type": "A", "name": "b", "content": "192.0.2.2"},
                {"type": "A", "name": "b", "content": "not-an-ip"},
            ],
        },
    )
    assert (status, codes(failed)) == (400, [9005])
    assert cf.records("example.com") == before


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({}, 400, 9106),
        ({"Authorization": "Bearer wrong"}, 403, 10000),
        ({"X-Auth-Email": "a@b.c", "X-Auth-Key": "nope"}, 403, 10000),
        ({"Authorization": "Bearer cf-token", "X-Auth-Email": "a@b.c"}, 400, 6003),
    ],
)
async def test_auth_errors(
    session: aiohttp.ClientSession,
    cf: RunningEmulator,
    headers: dict[str, str],
    status: int,
    code: int,
) -> None:
    """Missing, wrong or mixed credentials are refused with Cloudflare's codes."""
    got, body, _ = await api(session, cf, "GET", "/zones", headers=headers)
    assert (got, codes(body)) == (status, [code])


async def test_key_auth_and_token_verify(
    session: aiohttp.ClientSession, cf: RunningEmulator
) -> None:
    """A global key + email works for zones; token verify answers active for tokens."""
    cf.emulator.add_key("ops@example.org", "global-key")
    key = {"X-Auth-Email": "ops@example.org", "X-Auth-Key": "global-key"}
    status, zones, _ = await api(session, cf, "GET", "/zones?name=example.org", headers=key)
    assert (status, [z["id"] for z in zones["result"]]) == (200, ["b" * 32])
    _, verify, _ = await api(session, cf, "GET", "/user/tokens/verify")
    assert verify["result"]["status"] == "active"


async def test_zone_scoped_token(session: aiohttp.ClientSession, cf: RunningEmulator) -> None:
    """A token scoped to one zone cannot list zones or touch another zone."""
    cf.emulator.add_token("scoped", zones=["example.com"], can_list_zones=False)
    scoped = {"Authorization": "Bearer scoped"}
    listing, _, _ = await api(session, cf, "GET", "/zones", headers=scoped)
    own, _, _ = await api(session, cf, "GET", f"/zones/{ZONE}/dns_records", headers=scoped)
    other, _, _ = await api(session, cf, "GET", f"/zones/{'b' * 32}/dns_records", headers=scoped)
    assert (listing, own, other) == (403, 200, 403)


async def test_faults_and_stats(session: aiohttp.ClientSession, cf: RunningEmulator) -> None:
    """Injected 429 (with Retry-After) and 5xx, then normal service; requests are counted."""
    async with session.post(
        cf.root + "/__emulator/faults", json={"status": 429, "retryAfter": 7}
    ) as reply:
        assert reply.status == 200
    cf.emulator.fail(503)
    limited, body, headers = await api(session, cf, "GET", "/zones")
    failed, _, _ = await api(session, cf, "GET", "/zones")
    fine, _, _ = await api(session, cf, "GET", "/zones")
    assert (limited, headers["Retry-After"], codes(body)) == (429, "7", [971])
    assert (failed, fine) == (503, 200)
    async with session.get(cf.root + "/__emulator/stats") as reply:
        stats = await reply.json()
    assert stats == {"requests": {"GET /zones": 3}, "total": 3, "writes": 0}


def test_a_unicode_zone_is_stored_in_idna_form() -> None:
    """`--zone bücher.example` becomes xn--bcher-kva.example, as Cloudflare stores it."""
    assert State().add_zone("Bücher.Example.").name == "xn--bcher-kva.example"
