"""The sweeper: one listing per zone, since when each finding stands, prune after the grace
across two sweeps, repair as an upsert, and nothing changed while the DNSRecords are not known
(the real DNSRecord index, fed as its watch would, and the memory provider)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from sidecar.auth.clients import Client, ClientKind
from sidecar.clock import FrozenClock
from sidecar.config.live import LiveConfig
from sidecar.config.runtime import Runtime
from sidecar.coordination.local import LocalTurns
from sidecar.credentials.objects import DNSRecord
from sidecar.dnsrecords.index import DnsRecordIndex
from sidecar.errors import ProviderUnavailable
from sidecar.providers.base import Drift, HeldSet, Orphans, Ownership, Provider, ZonePolicy
from sidecar.providers.memory import MemoryProvider
from sidecar.providers.ownership import Owner
from sidecar.records import RecordKey, RecordSet
from sidecar.routing.table import Account, Route, RoutingTable
from sidecar.settings import SweepSettings
from sidecar.sweeps.metrics import SweepMetrics
from sidecar.sweeps.sweeper import Sweeper

ME = "dns-sidecar"
PUBLIC = Owner(ME, "public")


def dnsrecord(name: str, sub: str, values: list[str], *, kind: str = "A", **spec: Any) -> DNSRecord:
    body: dict[str, Any] = {
        "type": kind,
        "domain": "example.com",
        "subdomain": sub,
        "values": values,
        "dnsClassRef": {"name": spec.pop("dns_class", "public")},
        **spec,
    }
    return {"metadata": {"namespace": "apps", "name": name}, "spec": body}  # type: ignore[typeddict-item]


def index_of(*records: DNSRecord, classes: Sequence[str] = ("public",)) -> DnsRecordIndex:
    index = DnsRecordIndex()
    index.serve(classes, [])
    index.replace(None, list(records))
    index.connected(None)
    return index


def runtime_for(provider: Provider, zone: ZonePolicy, *classes: str) -> Runtime:
    account = Account("home", provider)
    clients = tuple(
        Client(name, kind=ClientKind.DNS_CLASS, dns_class=name) for name in classes or ("public",)
    )
    owners = {c.name: Owner(ME, c.dns_class) for c in clients}
    table = RoutingTable([Route(zone, account)], owners, Owner(ME))
    return Runtime(source="test", table=table, clients=clients, accounts={"home": account})


class Rig:
    def __init__(
        self,
        provider: Provider,
        index: DnsRecordIndex,
        *,
        zone: ZonePolicy | None = None,
        classes: Sequence[str] = ("public",),
        grace: float = 600,
    ) -> None:
        self.zone = zone or ZonePolicy("example.com", orphans=Orphans.PRUNE, drift=Drift.REPAIR)
        self.clock = FrozenClock()
        self.registry = CollectorRegistry()
        self.index = index
        self.sweeper = Sweeper(
            LiveConfig(runtime_for(provider, self.zone, *classes)),
            index,
            SweepSettings(interval=300, orphan_grace=grace),
            deployment=ME,
            clock=self.clock,
            turns=LocalTurns(),
            metrics=SweepMetrics(self.registry),
        )

    def metric(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, labels)


async def put(
    provider: Provider, sub: str, values: list[str], *, owner: Owner = PUBLIC, ttl: int = 300
) -> None:
    zone = ZonePolicy("example.com", owner=owner)
    record = RecordSet.build(RecordKey.parse("A", "example.com", sub), values, ttl)
    await provider.upsert(zone, record)


async def names(provider: MemoryProvider) -> list[tuple[str, tuple[str, ...], int | None]]:
    held = await provider.held(ZonePolicy("example.com"))
    return sorted((h.fqdn, h.values, h.ttl) for h in held)


async def test_a_renamed_record_is_pruned_after_the_grace_and_not_before() -> None:
    """The old name of a renamed DNSRecord: reported at once, kept through a second sweep within
    the grace, pruned by the first sweep past it (with one log-worthy action counted)."""
    provider = MemoryProvider()
    await put(provider, "old", ["192.0.2.1"])
    await put(provider, "new", ["192.0.2.1"])
    rig = Rig(provider, index_of(dnsrecord("web", "new", ["192.0.2.1"])))

    first = await rig.sweeper.sweep(act=True)
    assert [(f.kind.value, f.fqdn) for f in first.findings] == [("orphan", "old.example.com")]
    assert first.done == []
    status = rig.sweeper.status()
    assert [(o["name"], o["since"], o["sweeps"]) for o in status["orphans"]] == [
        ("old.example.com", "2026-01-01T00:00:00Z", 1)
    ]
    assert rig.metric("dns_sidecar_orphaned_record_sets", zone="example.com") == 1

    rig.clock.advance(599)  # a second sweep, within the grace
    second = await rig.sweeper.sweep(act=True)
    assert second.done == []
    assert len(await names(provider)) == 2

    rig.clock.advance(1)  # a third, past it
    third = await rig.sweeper.sweep(act=True)
    assert [(f.fqdn, what) for f, what in third.done] == [
        ("old.example.com", "pruned (1 value(s) removed)")
    ]
    assert await names(provider) == [("new.example.com", ("192.0.2.1",), 300)]
    assert rig.metric("dns_sidecar_sweep_actions_total", action="prune") == 1
    assert (await rig.sweeper.sweep(act=True)).findings == []
    assert rig.metric("dns_sidecar_orphaned_record_sets", zone="example.com") == 0


async def test_one_sweep_past_the_grace_is_not_enough() -> None:
    """An orphan first seen long ago by the clock but in one sweep only is not pruned: two
    sweeps at least."""
    provider = MemoryProvider()
    await put(provider, "old", ["192.0.2.1"])
    rig = Rig(provider, index_of(), grace=1)
    rig.clock.advance(10_000)
    assert (await rig.sweeper.sweep(act=True)).done == []
    rig.clock.advance(1)
    assert [what for _, what in (await rig.sweeper.sweep(act=True)).done] == [
        "pruned (1 value(s) removed)"
    ]


async def test_a_deleted_dnsclass_leaves_orphans_that_are_pruned() -> None:
    """The DNSClass's DNSRecords are gone (the operator dropped its finalizers without a call):
    every set of that class is an orphan; another class's sets and legacy ones stay."""
    provider = MemoryProvider()
    await put(provider, "a", ["192.0.2.1"])
    await put(provider, "b", ["192.0.2.2"])
    await put(provider, "theirs", ["192.0.2.3"], owner=Owner(ME, "internal"))
    await put(provider, "other", ["192.0.2.4"], owner=Owner("other-cluster", "public"))
    rig = Rig(provider, index_of(classes=("public", "internal")), classes=("public", "internal"))
    await rig.sweeper.sweep(act=True)
    rig.clock.advance(600)
    done = (await rig.sweeper.sweep(act=True)).done
    assert sorted(f.fqdn for f, what in done if what.startswith("pruned")) == [
        "a.example.com",
        "b.example.com",
        "theirs.example.com",
    ]
    assert await names(provider) == [("other.example.com", ("192.0.2.4",), 300)]


async def test_never_pruned_legacy_unknown_class_or_report_only(tmp_path: Path) -> None:
    """A legacy set (from a snapshot written before owners), a set of a class no client serves,
    and any orphan in a zone that only reports, are reported for ever and never deleted."""
    snapshot = tmp_path / "records.json"
    row = {"type": "A", "domain": "example.com", "subdomain": "legacy", "values": ["192.0.2.1"]}
    snapshot.write_text(json.dumps({"version": 1, "records": [row | {"ttl": 300}]}))
    provider = MemoryProvider(snapshot=snapshot)
    await put(provider, "gone", ["192.0.2.2"], owner=Owner(ME, "retired"))
    rig = Rig(provider, index_of())
    for _ in range(3):
        await rig.sweeper.sweep(act=True)
        rig.clock.advance(1000)
    assert [(o["name"], o["fix"]) for o in rig.sweeper.status()["orphans"]] == [
        ("gone.example.com", None),
        ("legacy.example.com", None),
    ]
    reporting = MemoryProvider()
    await put(reporting, "old", ["192.0.2.1"])
    only = Rig(reporting, index_of(), zone=ZonePolicy("example.com"))
    for _ in range(3):
        assert (await only.sweeper.sweep(act=True)).done == []
        only.clock.advance(1000)
    assert len(await names(reporting)) == 1


async def test_drift_is_reported_then_repaired_as_an_upsert() -> None:
    """Values edited behind the sidecar's back, a set deleted, a TTL changed: repaired at once
    in a zone with drift: repair; reported only under report."""
    provider = MemoryProvider()
    await put(provider, "www", ["198.51.100.1"])
    await put(provider, "slow", ["192.0.2.3"], ttl=60)
    records = index_of(
        dnsrecord("www", "www", ["192.0.2.1"]),
        dnsrecord("api", "api", ["192.0.2.2"], ttl=120),
        dnsrecord("slow", "slow", ["192.0.2.3"]),
    )
    report = Rig(provider, records, zone=ZonePolicy("example.com"))
    found = await report.sweeper.sweep(act=True)
    assert [(f.kind.value, f.fqdn) for f in found.findings] == [
        ("drift", "api.example.com"),
        ("drift", "slow.example.com"),
        ("drift", "www.example.com"),
    ]
    assert found.done == []
    assert report.metric("dns_sidecar_drifted_records", zone="example.com") == 3

    repair = Rig(provider, records)
    done = (await repair.sweeper.sweep(act=True)).done
    assert [(f.fqdn, what) for f, what in done] == [
        ("api.example.com", "repaired (created)"),
        ("slow.example.com", "repaired (updated)"),
        ("www.example.com", "repaired (updated)"),
    ]
    assert await names(provider) == [
        ("api.example.com", ("192.0.2.2",), 120),
        ("slow.example.com", ("192.0.2.3",), 300),
        ("www.example.com", ("192.0.2.1",), 300),
    ]
    assert repair.metric("dns_sidecar_sweep_actions_total", action="repair") == 3
    assert (await repair.sweeper.sweep(act=True)).findings == []


async def test_a_foreign_set_is_a_conflict_never_touched() -> None:
    """A set another deployment wrote where a DNSRecord wants one: a conflict, reported; the
    repair is not tried and the set stays."""
    provider = MemoryProvider()
    await put(provider, "www", ["198.51.100.7"], owner=Owner("other-cluster", "public"))
    rig = Rig(provider, index_of(dnsrecord("www", "www", ["192.0.2.1"])))
    result = await rig.sweeper.sweep(act=True)
    assert [(f.kind.value, f.fix) for f in result.findings] == [("conflict", None)]
    assert result.done == []
    assert rig.sweeper.status()["conflicts"][0]["values"] == ["198.51.100.7"]
    assert rig.metric("dns_sidecar_record_conflicts", zone="example.com") == 1
    assert await names(provider) == [("www.example.com", ("198.51.100.7",), 300)]


async def test_an_unsynced_view_is_not_swept() -> None:
    """Before the DNSRecord list is synced nothing is listed nor decided (everything would look
    orphaned)."""
    provider = CountingProvider(MemoryProvider())
    await put(provider.inner, "old", ["192.0.2.1"])
    index = DnsRecordIndex()
    index.serve(["public"], [])
    rig = Rig(provider, index)
    result = await rig.sweeper.sweep(act=True)
    assert (result.skipped, result.findings, provider.listings) == (
        "the DNSRecord list is not synced yet",
        [],
        0,
    )
    assert rig.sweeper.status()["lastSweep"]["skipped"] == "the DNSRecord list is not synced yet"


async def test_the_watch_dropped_during_a_sweep_prunes_nothing() -> None:
    """The watch drops while the zone is being listed: the sweep reports that and neither
    prunes nor repairs, even for an orphan well past its grace."""
    provider = CountingProvider(MemoryProvider())
    await put(provider.inner, "old", ["192.0.2.1"])
    index = index_of(dnsrecord("www", "www", ["192.0.2.1"]))
    rig = Rig(provider, index)
    await rig.sweeper.sweep(act=True)  # repairs www (missing), starts the orphan's clock
    await put(provider.inner, "www", ["198.51.100.9"])  # drift again
    rig.clock.advance(10_000)
    provider.during_listing = lambda: index.lost(None, "watch dropped")
    result = await rig.sweeper.sweep(act=True)
    assert result.skipped == "the DNSRecord watch restarted during the sweep"
    assert result.done == []
    assert await names(provider.inner) == [
        ("old.example.com", ("192.0.2.1",), 300),
        ("www.example.com", ("198.51.100.9",), 300),
    ]


async def test_a_failed_listing_decides_nothing_for_its_zone() -> None:
    """A listing that fails is shown on the zone and changes nothing; the orphans it had keep
    their age, so the next good sweep may prune them."""
    provider = CountingProvider(MemoryProvider())
    await put(provider.inner, "old", ["192.0.2.1"])
    rig = Rig(provider, index_of())
    await rig.sweeper.sweep(act=True)
    rig.clock.advance(700)
    provider.failure = ProviderUnavailable("Cloudflare account 'home' did not answer.")
    failed = await rig.sweeper.sweep(act=True)
    assert failed.done == []
    assert rig.sweeper.status()["lastSweep"]["zones"] == [
        {
            "zone": "example.com",
            "account": "home",
            "dnsClasses": ["public"],
            "error": "Cloudflare account 'home' did not answer.",
        }
    ]
    provider.failure = None
    again = await rig.sweeper.sweep(act=True)
    assert [what for _, what in again.done] == ["pruned (1 value(s) removed)"]
    assert provider.listings == 3


class CountingProvider:
    """The memory provider, its listings counted; a listing may fail or run a hook."""

    kind = "counting"

    def __init__(self, inner: MemoryProvider) -> None:
        self.inner = inner
        self.listings = 0
        self.failure: Exception | None = None
        self.during_listing: Any = None
        self.after_write: Any = None
        self.refuse_writes: Exception | None = None

    async def held(self, zone: ZonePolicy) -> list[HeldSet]:
        self.listings += 1
        if self.failure is not None:
            raise self.failure
        if self.during_listing is not None:
            self.during_listing()
        return await self.inner.held(zone)

    async def upsert(self, zone: ZonePolicy, record: RecordSet) -> Any:
        if self.refuse_writes is not None:
            raise self.refuse_writes
        done = await self.inner.upsert(zone, record)
        if self.after_write is not None:
            self.after_write()
        return done

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def test_each_change_is_checked_against_the_dnsrecords_of_now() -> None:
    """A DNSRecord that comes back during the sweep keeps its set (no prune); one deleted during
    the sweep is not repaired; a change the provider refuses is reported as failed."""
    provider = CountingProvider(MemoryProvider())
    await put(provider.inner, "back", ["192.0.2.1"])
    index = index_of(dnsrecord("gone", "gone", ["192.0.2.2"]))
    rig = Rig(provider, index, grace=1)
    await rig.sweeper.sweep(act=False)
    rig.clock.advance(1)

    def meanwhile() -> None:  # watch events that do not restart the watch
        index.apply(None, "ADDED", dnsrecord("back", "back", ["192.0.2.1"]))
        index.apply(None, "DELETED", dnsrecord("gone", "gone", ["192.0.2.2"]))

    provider.during_listing = meanwhile
    done = (await rig.sweeper.sweep(act=True)).done
    assert [(f.fqdn, what) for f, what in done] == [
        ("back.example.com", "not done: a DNSRecord wants it again"),
        ("gone.example.com", "not done: no DNSRecord wants it any more"),
    ]
    provider.during_listing = None
    index.apply(None, "ADDED", dnsrecord("other", "other", ["192.0.2.3"]))
    provider.refuse_writes = ProviderUnavailable("The memory provider could not write.")
    failed = (await rig.sweeper.sweep(act=True)).done
    assert [(f.fqdn, what) for f, what in failed] == [
        ("other.example.com", "failed: The memory provider could not write.")
    ]


async def test_a_watch_restart_between_two_changes_stops_the_rest() -> None:
    """The watch restarts while the sweep acts: the changes not yet made are not made."""
    provider = CountingProvider(MemoryProvider())
    index = index_of(dnsrecord("a", "a", ["192.0.2.1"]), dnsrecord("b", "b", ["192.0.2.2"]))
    provider.after_write = lambda: index.lost(None, "watch dropped")
    rig = Rig(provider, index)
    done = (await rig.sweeper.sweep(act=True)).done
    assert [(f.fqdn, what) for f, what in done] == [
        ("a.example.com", "repaired (created)"),
        ("b.example.com", "not done: the DNSRecord watch restarted"),
    ]


class Turns:
    """Turns answered from a script: an error, then another replica's, then ours."""

    def __init__(self, answers: list[bool | Exception]) -> None:
        self.answers = answers
        self.asked: list[tuple[str, float]] = []

    async def take(self, name: str, lease: float) -> bool:
        self.asked.append((name, lease))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


async def test_the_loop_sweeps_only_with_the_turn() -> None:
    """Every interval the loop asks for the turn (lease: two intervals and 30 s): Redis failing
    or another replica holding it means no sweep; with it, one sweep."""
    provider = CountingProvider(MemoryProvider())
    turns = Turns([ProviderUnavailable("Redis is down."), False, True])
    waits: list[float] = []
    states: list[str] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        states.append(sweeper.turn)
        if len(waits) > 3:
            raise asyncio.CancelledError

    sweeper = Sweeper(
        LiveConfig(runtime_for(provider, ZonePolicy("example.com"))),
        index_of(),
        SweepSettings(interval=5),
        deployment=ME,
        clock=FrozenClock(),
        turns=turns,
        sleep=sleep,
    )
    with pytest.raises(asyncio.CancelledError):
        await sweeper.run_forever()
    assert waits == [5, 5, 5, 5]
    assert turns.asked == [("sweep", 40)] * 3
    assert states == [
        "not taken yet",
        "unknown: Redis is down.",
        "another replica sweeps",
        "this replica sweeps",
    ]
    assert (sweeper.sweeps, provider.listings) == (1, 1)
    assert sweeper.status()["lastSweep"]["skipped"] is None


def test_status_before_any_sweep_says_whether_sweeps_are_on() -> None:
    """Before the first sweep /status shows the settings, whose turn it is, and no sweep; an
    interval of 0 shows sweeps off."""
    sweeper = Sweeper(
        LiveConfig(runtime_for(MemoryProvider(), ZonePolicy("example.com"))),
        index_of(),
        SweepSettings(interval=0, orphan_grace=60),
        deployment="home",
        clock=FrozenClock(),
        turns=LocalTurns(),
    )
    assert sweeper.status() == {
        "enabled": False,
        "intervalSeconds": 0.0,
        "orphanGraceSeconds": 60.0,
        "ownerId": "home",
        "turn": "not taken yet",
        "lastSweep": None,
    }


async def test_orphans_are_never_pruned_while_only_some_namespaces_are_read() -> None:
    """With DNS_SIDECAR_DNSRECORD_NAMESPACES set, a set no DNSRecord of the namespaces read
    wants may be wanted by one in another namespace (the operator serves them all): it is
    reported with the reason, and kept past the grace."""
    provider = MemoryProvider()
    await put(provider, "other", ["192.0.2.1"])
    index = DnsRecordIndex()
    index.serve(["public"], ["apps"])
    index.replace("apps", [])
    index.connected("apps")
    rig = Rig(provider, index, grace=1)
    for _ in range(3):
        found = await rig.sweeper.sweep(act=True)
        rig.clock.advance(10)
    assert found.done == []
    assert await names(provider) == [("other.example.com", ("192.0.2.1",), 300)]
    assert [(f.kind.value, f.fix) for f in found.findings] == [("orphan", None)]
    assert "only the DNSRecords of namespace(s) apps are read" in found.findings[0].reason


async def test_a_dnsrecord_edited_during_the_sweep_is_not_reverted() -> None:
    """The operator has upserted an edit the watch delivers only while the zone is listed: the
    repair planned from the older copy is not made (it would put the old values back)."""
    provider = CountingProvider(MemoryProvider())
    await put(provider.inner, "web", ["192.0.2.2"])  # the operator's upsert of the edit
    index = index_of(dnsrecord("web", "web", ["192.0.2.1"]))  # the watch's older copy
    rig = Rig(provider, index)
    provider.during_listing = lambda: index.apply(
        None, "MODIFIED", dnsrecord("web", "web", ["192.0.2.2"])
    )
    done = (await rig.sweeper.sweep(act=True)).done
    assert [(f.fqdn, what) for f, what in done] == [
        ("web.example.com", "not done: its DNSRecord changed during the sweep")
    ]
    assert await names(provider.inner) == [("web.example.com", ("192.0.2.2",), 300)]


async def test_the_memory_provider_prunes_only_its_owners_own_set(tmp_path: Path) -> None:
    """``prune`` under ``ownership: off``: a set of another DNSClass (taken over since the
    listing) and one under the marker from before owners stay; the owner's own set goes."""
    snapshot = tmp_path / "records.json"
    row = {"type": "A", "domain": "example.com", "subdomain": "legacy", "values": ["192.0.2.1"]}
    snapshot.write_text(json.dumps({"version": 1, "records": [row | {"ttl": 300}]}))
    provider = MemoryProvider(snapshot=snapshot)
    await put(provider, "theirs", ["192.0.2.2"], owner=Owner(ME, "internal"))
    await put(provider, "mine", ["192.0.2.3"])
    zone = ZonePolicy("example.com", ownership=Ownership.OFF, owner=PUBLIC)
    results = [
        await provider.prune(zone, RecordKey.parse("A", "example.com", sub))
        for sub in ("legacy", "theirs", "mine", "absent")
    ]
    assert [(r.removed, r.left) for r in results] == [
        (0, ("A 192.0.2.1",)),
        (0, ("A 192.0.2.2",)),
        (1, ()),
        (0, ()),
    ]
    assert [fqdn for fqdn, _, _ in await names(provider)] == [
        "legacy.example.com",
        "theirs.example.com",
    ]
