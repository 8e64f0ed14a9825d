"""Owners in the markers, on both providers (memory, and Cloudflare through the real SDK on the
emulator): a set another DNSClass or deployment wrote is foreign under strict, a legacy marker is
rewritten by the next upsert, and ``held`` lists a whole zone in one listing."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sidecar.clock import FrozenClock
from sidecar.coordination.budget import Budget
from sidecar.errors import ProviderUnavailable, RecordConflict
from sidecar.providers.base import HeldSet, Ownership, Provider, ZonePolicy
from sidecar.providers.cloudflare.auth import Auth
from sidecar.providers.cloudflare.client import CloudflareApi
from sidecar.providers.cloudflare.provider import CloudflareProvider
from sidecar.providers.memory import MemoryProvider
from sidecar.providers.ownership import Mark, Owner
from sidecar.records import RecordKey, RecordSet
from tests.builders import local
from tests.conftest import RunningEmulator

COM = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
LEGACY = "managed by dns-sidecar"
PUBLIC = Owner("home", "public")
INTERNAL = Owner("home", "internal")


def zone(owner: Owner, **extra: object) -> ZonePolicy:
    return ZonePolicy(name="example.com", owner=owner, **extra)  # type: ignore[arg-type]


def a_set(sub: str, *values: str, ttl: int = 300) -> RecordSet:
    return RecordSet.build(RecordKey.parse("A", "example.com", sub), values, ttl)


def cloudflare(cf: RunningEmulator, list_page: int = 5000) -> CloudflareProvider:
    clock = FrozenClock()
    api = CloudflareApi(
        "personal",
        lambda: Auth(token="cf-token"),
        Budget("personal", 1000, 300, clock),
        base_url=cf.base_url,
        list_page=list_page,
    )
    coordination = local(clock)
    return CloudflareProvider(api, clock, locks=coordination.locks, versions=coordination.versions)


@pytest.fixture(params=["memory", "cloudflare"])
async def provider(request: pytest.FixtureRequest, cf: RunningEmulator) -> AsyncIterator[Provider]:
    made: Provider = MemoryProvider() if request.param == "memory" else cloudflare(cf)
    yield made
    await made.aclose()


def ours(held: list[HeldSet]) -> list[tuple[str, str, tuple[str, ...], Mark | None]]:
    return sorted((h.type, h.fqdn, h.values, h.mark) for h in held)


async def test_another_dnsclass_set_is_foreign_under_strict(provider: Provider) -> None:
    """A set written for DNSClass public: an upsert for internal is 409 naming the owner, its
    delete leaves it; public itself changes and deletes it."""
    await provider.upsert(zone(PUBLIC), a_set("www", "192.0.2.1"))
    with pytest.raises(RecordConflict) as refused:
        await provider.upsert(zone(INTERNAL), a_set("www", "192.0.2.9"))
    assert "owner=home, class=public" in refused.value.message
    assert "ownership: adopt" in refused.value.message
    left = await provider.delete(zone(INTERNAL), RecordKey.parse("A", "example.com", "www"))
    assert (left.removed, left.left) == (0, ("A 192.0.2.1",))
    changed = await provider.upsert(zone(PUBLIC), a_set("www", "192.0.2.2"))
    assert changed.outcome.value == "updated"
    gone = await provider.delete(zone(PUBLIC), RecordKey.parse("A", "example.com", "www"))
    assert gone.removed == 1


async def test_adopt_and_off_write_over_another_owner(provider: Provider) -> None:
    """Under adopt the set becomes the caller's (its marker moves); under off no marker is
    checked."""
    await provider.upsert(zone(PUBLIC), a_set("www", "192.0.2.1"))
    adopt = zone(INTERNAL, ownership=Ownership.ADOPT)
    assert (await provider.upsert(adopt, a_set("www", "192.0.2.1"))).outcome.value == "updated"
    listed = ours(list(await provider.held(zone(INTERNAL))))
    assert listed == [("A", "www.example.com", ("192.0.2.1",), Mark("home", "internal"))]
    off = zone(PUBLIC, ownership=Ownership.OFF)
    assert (await provider.upsert(off, a_set("www", "192.0.2.5"))).outcome.value == "updated"


async def test_held_reads_each_set_with_its_mark(provider: Provider) -> None:
    """One listing: each set with its canonical values, TTL and mark, whoever wrote it."""
    await provider.upsert(zone(PUBLIC), a_set("www", "192.0.2.2", "192.0.2.1", ttl=600))
    await provider.upsert(zone(INTERNAL), a_set("intra", "10.0.0.1"))
    await provider.upsert(zone(Owner("home")), a_set("plain", "192.0.2.7"))
    held = sorted(await provider.held(zone(PUBLIC)), key=lambda h: h.fqdn)
    assert [(h.fqdn, sorted(h.values), h.ttl, h.mark, h.foreign) for h in held] == [
        ("intra.example.com", ["10.0.0.1"], 300, Mark("home", "internal"), ()),
        ("plain.example.com", ["192.0.2.7"], 300, Mark("home", None), ()),
        ("www.example.com", ["192.0.2.1", "192.0.2.2"], 600, Mark("home", "public"), ()),
    ]


async def test_memory_legacy_snapshot_is_ours_and_rewritten(tmp_path: Path) -> None:
    """A version 1 snapshot (before owners): its sets are legacy (ours, no class); the next
    upsert of the same values rewrites the marker ("updated"), kept in the snapshot."""
    snapshot = tmp_path / "records.json"
    row = {"type": "A", "domain": "example.com", "subdomain": "www", "values": ["192.0.2.1"]}
    snapshot.write_text(json.dumps({"version": 1, "records": [row | {"ttl": 300}]}))
    provider = MemoryProvider(snapshot=snapshot)
    assert ours(list(await provider.held(zone(PUBLIC)))) == [
        ("A", "www.example.com", ("192.0.2.1",), Mark())
    ]
    moved = await provider.upsert(zone(PUBLIC), a_set("www", "192.0.2.1"))
    assert moved.outcome.value == "updated"
    again = await provider.upsert(zone(PUBLIC), a_set("www", "192.0.2.1"))
    assert again.outcome.value == "unchanged"
    stored = json.loads(snapshot.read_text())
    assert (stored["version"], stored["records"][0]["marker"]) == (
        2,
        "managed by dns-sidecar (owner=home, class=public)",
    )
    reloaded = MemoryProvider(snapshot=snapshot)
    assert ours(list(await reloaded.held(zone(PUBLIC))))[0][3] == Mark("home", "public")


async def test_memory_held_of_one_zone_and_a_marker_of_another_comment() -> None:
    """A zone's listing holds only its names; a set whose marker has another comment is
    foreign to a zone with a different comment."""
    provider = MemoryProvider()
    await provider.upsert(zone(PUBLIC), a_set("www", "192.0.2.1"))
    other = ZonePolicy(name="example.org", owner=PUBLIC)
    key = RecordKey.parse("A", "example.org", "www")
    await provider.upsert(other, RecordSet.build(key, ["192.0.2.3"], 300))
    assert [h.fqdn for h in await provider.held(zone(PUBLIC))] == ["www.example.com"]
    renamed = zone(PUBLIC, comment="edited by ops")
    assert [(h.values, h.mark, h.foreign) for h in await provider.held(renamed)] == [
        ((), None, ("192.0.2.1",))
    ]


async def test_cloudflare_legacy_comment_is_rewritten_by_the_next_upsert(
    cf: RunningEmulator,
) -> None:
    """A record with the bare comment (from before owners) is ours: the next upsert with the
    same value patches only its comment to the owner's marker."""
    records = cf.emulator.state.zones[COM]
    cf.emulator.state.create(
        records, {"type": "A", "name": "www", "content": "192.0.2.1", "ttl": 300, "comment": LEGACY}
    )
    provider = cloudflare(cf)
    try:
        moved = await provider.upsert(zone(PUBLIC), a_set("www", "192.0.2.1"))
    finally:
        await provider.aclose()
    assert moved.outcome.value == "updated"
    assert [r["comment"] for r in cf.records("example.com")] == [
        "managed by dns-sidecar (owner=home, class=public)"
    ]


async def test_cloudflare_held_is_one_listing_of_every_page(cf: RunningEmulator) -> None:
    """250 records over pages of 100: three list calls, nothing else; unmarked and differently
    marked values of one name come back as foreign."""
    records = cf.emulator.state.zones[COM]
    for i in range(248):
        body = {"type": "A", "name": f"h{i}", "content": "192.0.2.1", "comment": LEGACY}
        cf.emulator.state.create(records, body)
    cf.emulator.state.create(records, {"type": "A", "name": "mixed", "content": "192.0.2.1"})
    marked = {"comment": "managed by dns-sidecar (owner=home, class=public)"}
    cf.emulator.state.create(
        records, {"type": "A", "name": "mixed", "content": "192.0.2.2", **marked}
    )
    provider = cloudflare(cf, list_page=100)
    try:
        held = await provider.held(ZonePolicy(name="example.com", zone_id=COM))
    finally:
        await provider.aclose()
    assert cf.calls() == {"GET /zones/{zone_id}/dns_records": 3}
    assert len(held) == 249
    mixed = next(h for h in held if h.fqdn == "mixed.example.com")
    assert (mixed.values, mixed.mark, mixed.foreign) == (
        ("192.0.2.2",),
        Mark("home", "public"),
        ("192.0.2.1",),
    )


async def test_cloudflare_held_fails_as_a_provider_error(cf: RunningEmulator) -> None:
    """A listing the API fails is a provider error (the sweep then changes nothing)."""
    cf.emulator.fail(503)
    provider = cloudflare(cf)
    try:
        with pytest.raises(ProviderUnavailable):
            await provider.held(ZonePolicy(name="example.com", zone_id=COM))
    finally:
        await provider.aclose()
