"""One provider contract, run against every provider: memory, Cloudflare (the emulator through
the real SDK) and RFC 2136 (a real BIND), so their semantics cannot drift apart.

Each case names the behaviour; the providers differ only in where the data lives.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sidecar.config import loader
from sidecar.config.runtime import Runtime, build
from sidecar.errors import RecordConflict
from sidecar.providers.base import Outcome, Provider, ZonePolicy
from sidecar.providers.memory import MemoryProvider
from sidecar.providers.ownership import Owner
from sidecar.records import RecordKey, RecordSet
from tests.bind_server import KEY_NAME, BindServer
from tests.builders import local
from tests.conftest import RunningEmulator, make_settings

ZONE = "example.test"

TYPES: list[tuple[str, str, list[str]]] = [
    ("A", "www", ["192.0.2.1", "192.0.2.2"]),
    ("AAAA", "www", ["2001:db8::1"]),
    ("CNAME", "alias", ["target.example.net"]),
    ("TXT", "txt", ["v=spf1 -all", "y" * 400]),
    ("MX", "mail", ["10 mx1.example.net", "20 mx2.example.net"]),
    ("SRV", "_sip._tcp", ["10 5 5060 sip.example.net"]),
    ("CAA", "caa", ['0 issue "letsencrypt.org"']),
    ("NS", "sub", ["ns1.example.net"]),
]


@dataclass
class Subject:
    provider: Provider
    zone: ZonePolicy


def _built(text: str) -> Runtime:
    spec = loader.parse(text, "contract.yaml")
    return build(spec, make_settings(), source="contract.yaml", coordination=local())


@pytest.fixture(params=["memory", "cloudflare", "rfc2136"])
async def subject(
    request: pytest.FixtureRequest, cf: RunningEmulator, tmp_path: Path
) -> AsyncIterator[Subject]:
    """Each provider, serving the zone example.test."""
    zone = ZonePolicy(name=ZONE)
    if request.param == "memory":
        yield Subject(MemoryProvider(), zone)
        return
    if request.param == "cloudflare":
        cf.emulator.state.add_zone(ZONE, "d" * 32)
        runtime = _built(
            "version: 1\naccounts: [{name: x, provider: cloudflare, apiToken: {value: cf-token}, "
            f"baseUrl: '{cf.base_url}'}}]\nzones: [{{name: {ZONE}, account: x}}]\n"
        )
        yield Subject(runtime.accounts["x"].provider, zone)
        await runtime.aclose()
        return
    bind = BindServer(tmp_path / "bind")
    bind.start()
    try:
        runtime = _built(
            f"version: 1\naccounts: [{{name: x, provider: rfc2136, server: '{bind.address}', "
            f"tsig: {{name: {KEY_NAME}, secret: {{value: '{bind.secret}'}}}}}}]\n"
            f"zones: [{{name: {ZONE}, account: x}}]\n"
        )
        yield Subject(runtime.accounts["x"].provider, zone)
    finally:
        bind.stop()


def _record(kind: str, sub: str, values: list[str], ttl: int = 300) -> RecordSet:
    return RecordSet.build(RecordKey.parse(kind, ZONE, sub), values, ttl)


@pytest.mark.parametrize(("kind", "sub", "values"), TYPES, ids=[t[0] for t in TYPES])
async def test_every_type_is_created_read_unchanged_and_deleted(
    subject: Subject, kind: str, sub: str, values: list[str]
) -> None:
    """created -> read back equal -> unchanged -> deleted -> gone -> deleting again removes 0."""
    provider, zone = subject.provider, subject.zone
    wanted = _record(kind, sub, values)
    assert (await provider.upsert(zone, wanted)).outcome is Outcome.CREATED
    found = await provider.get(zone, wanted.key)
    assert found is not None
    assert (sorted(found.values), found.ttl) == (sorted(wanted.values), wanted.ttl)
    assert (await provider.upsert(zone, wanted)).outcome is Outcome.UNCHANGED
    assert (await provider.delete(zone, wanted.key)).removed == len(wanted.values)
    assert await provider.get(zone, wanted.key) is None
    assert (await provider.delete(zone, wanted.key)).removed == 0


async def test_an_upsert_replaces_the_set_never_merges(subject: Subject) -> None:
    """A changed upsert is UPDATED and the name then holds exactly the new values (and TTL)."""
    provider, zone = subject.provider, subject.zone
    await provider.upsert(zone, _record("A", "web", ["192.0.2.1", "192.0.2.2"]))
    changed = await provider.upsert(zone, _record("A", "web", ["192.0.2.2", "192.0.2.3"], 600))
    assert changed.outcome is Outcome.UPDATED
    found = await provider.get(zone, RecordKey.parse("A", ZONE, "web"))
    assert found is not None
    assert (sorted(found.values), found.ttl) == (["192.0.2.2", "192.0.2.3"], 600)


async def test_a_cname_shares_its_name_with_nothing(subject: Subject) -> None:
    """A beside a CNAME and a CNAME beside an A are both RECORD_CONFLICT; nothing changes."""
    provider, zone = subject.provider, subject.zone
    await provider.upsert(zone, _record("CNAME", "c", ["target.example.net"]))
    with pytest.raises(RecordConflict):
        await provider.upsert(zone, _record("A", "c", ["192.0.2.1"]))
    await provider.upsert(zone, _record("A", "a", ["192.0.2.1"]))
    with pytest.raises(RecordConflict):
        await provider.upsert(zone, _record("CNAME", "a", ["target.example.net"]))
    assert await provider.get(zone, RecordKey.parse("A", ZONE, "c")) is None
    assert await provider.get(zone, RecordKey.parse("CNAME", ZONE, "a")) is None


async def test_another_owners_set_is_not_ours_under_strict(subject: Subject) -> None:
    """A set another deployment wrote: an upsert is RECORD_CONFLICT and a delete leaves it."""
    provider, zone = subject.provider, subject.zone
    theirs = ZonePolicy(name=ZONE, owner=Owner("cluster-b", "public"))
    await provider.upsert(theirs, _record("A", "shared", ["192.0.2.9"]))
    with pytest.raises(RecordConflict):
        await provider.upsert(zone, _record("A", "shared", ["192.0.2.1"]))
    deleted = await provider.delete(zone, RecordKey.parse("A", ZONE, "shared"))
    assert deleted.removed == 0
    found = await provider.get(zone, RecordKey.parse("A", ZONE, "shared"))
    assert found is not None
    assert found.values == ("192.0.2.9",)


async def test_the_listing_carries_each_sets_owner(subject: Subject) -> None:
    """held(): each set the sidecar wrote, with the mark of the owner that wrote it."""
    provider, zone = subject.provider, subject.zone
    public = ZonePolicy(name=ZONE, owner=Owner("dns-sidecar", "public"))
    await provider.upsert(public, _record("A", "one", ["192.0.2.1"]))
    await provider.upsert(zone, _record("TXT", "two", ["hello"]))
    listed = {
        (h.type, h.fqdn): (h.values, h.mark is not None and h.mark.made_by(owner))
        for h in await provider.held(zone)
        for owner in [public.owner if h.fqdn.startswith("one.") else zone.owner]
        if h.fqdn in (f"one.{ZONE}", f"two.{ZONE}")
    }
    assert listed == {
        ("A", f"one.{ZONE}"): (("192.0.2.1",), True),
        ("TXT", f"two.{ZONE}"): (("hello",), True),
    }
