"""Sweeps end to end: the real DNSRecord watch (kubernetes_asyncio against the fake API
server), the operator's upserts as its client sends them, Cloudflare through the real SDK on the
emulator (its counts say what a sweep cost), and Redis for two replicas.

Most tests run the sweeper's pass themselves on a frozen clock (the loop's timing is not what
they pin); the loop itself runs in the cost and replica tests.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from sidecar.app import DNS_RECORDS, LIVE, SWEEPER
from sidecar.auth.signing import format_timestamp
from sidecar.clock import FrozenClock
from sidecar.sweeps.sweeper import Sweeper
from tests.builders import dns_record_spec, operator_upsert
from tests.conftest import (
    ProtocolReply,
    RunningEmulator,
    RunningKube,
    Sidecar,
    StartManagement,
    StartSidecar,
    eventually,
    make_settings,
)
from tests.redis_server import RedisServer

COM = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
ORG = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
PUBLIC = {"server": "http://127.0.0.1:7100", "defaultTTL": 300}  # unsigned, loopback
INTERNAL = {"server": "http://127.0.0.1:7100", "hmacAuth": {"secret": "internal-secret"}}
LIST = "GET /zones/{zone_id}/dns_records"
MARK = "managed by dns-sidecar (owner=dns-sidecar, class=public)"


def table(cf: RunningEmulator, *, orphans: str = "prune", drift: str = "repair") -> str:
    return f"""
version: 1
defaults: {{orphans: {orphans}, drift: {drift}}}
clients:
  - {{name: public, dnsClass: public}}
  - {{name: internal, dnsClass: internal}}
accounts:
  - {{name: cf, provider: cloudflare, apiToken: {{value: cf-token}}, baseUrl: {cf.base_url}}}
zones:
  - {{name: example.com, account: cf, zoneId: {COM}}}
  - {{name: example.org, account: cf, zoneId: {ORG}}}
"""


async def start(
    start_sidecar: StartSidecar,
    kube: RunningKube,
    tmp_path: Path,
    text: str,
    *,
    clock: FrozenClock | None = None,
    **settings: Any,
) -> Sidecar:
    path = tmp_path / "routing.yaml"
    path.write_text(text)
    sweeps = settings.pop("sweeps", {"interval": 300})
    made = make_settings(
        table={"config": path},
        kubernetes={"kubeconfig": kube.kubeconfig},
        sweeps=sweeps,
        **settings,
    )
    sidecar = await start_sidecar(made, clock=clock)
    await eventually(lambda: sidecar.app[DNS_RECORDS].synced)
    return sidecar


def sweeper(sidecar: Sidecar) -> Sweeper:
    return sidecar.app[SWEEPER]


async def send(sidecar: Sidecar, spec: dict[str, Any], **signing: Any) -> ProtocolReply:
    dns_class = INTERNAL if spec["dnsClassRef"]["name"] == "internal" else PUBLIC
    return await sidecar.caller.call(
        "POST", "/records", operator_upsert(spec, dns_class), **signing
    )


def a_record(
    sub: str, values: list[str], dns_class: str = "public", **extra: Any
) -> dict[str, Any]:
    return dns_record_spec("A", "example.com", sub, values, dns_class, **extra)


def at(cf: RunningEmulator, zone: str = "example.com") -> list[tuple[str, str, str, int, Any]]:
    return sorted(
        (r["type"], r["name"], r["content"], r["ttl"], r.get("comment")) for r in cf.records(zone)
    )


def foreign(cf: RunningEmulator, name: str, content: str, **extra: Any) -> None:
    body = {"type": "A", "name": name, "content": content, "ttl": 300, **extra}
    cf.emulator.state.create(cf.emulator.state.zones[COM], body)


async def wanted(sidecar: Sidecar, *fqdns: str) -> None:
    """The watch has delivered exactly these DNSRecords of class public."""
    index = sidecar.app[DNS_RECORDS]
    await eventually(lambda: sorted(r.key.fqdn for r in index.wanted("public")) == list(fqdns))


async def orphaned(
    start_sidecar: StartSidecar, kube: RunningKube, tmp_path: Path, text: str
) -> tuple[Sidecar, FrozenClock]:
    """A sidecar on ``text`` that wrote ``old.example.com`` for the DNSRecord apps/web
    of class public, whose DNSRecord is then gone (its finalizer removed by hand): an orphan."""
    kube.fake.set_dns_class("public", PUBLIC)
    old = a_record("old", ["192.0.2.1"])
    kube.fake.set_dns_record("apps", "web", old)
    clock = FrozenClock()
    sidecar = await start(start_sidecar, kube, tmp_path, text, clock=clock)
    assert (await send(sidecar, old)).status == 200
    kube.fake.delete("DNSRecord", "apps", "web")
    await wanted(sidecar)
    return sidecar, clock


async def test_a_rename_leaves_an_orphan_reported_then_pruned_after_the_grace(  # noqa: PLR0917
    kube: RunningKube,
    start_sidecar: StartSidecar,
    start_management: StartManagement,
    tmp_path: Path,
    cf: RunningEmulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The operator upserts the renamed DNSRecord and never deletes the old name: the sweep
    reports the old set at once (one listing per zone), keeps it through the grace, and prunes
    it on the first sweep past it, with one log line."""
    kube.fake.set_dns_class("public", PUBLIC)
    old = a_record("old", ["192.0.2.1"])
    kube.fake.set_dns_record("apps", "web", old)
    clock = FrozenClock()
    sidecar = await start(start_sidecar, kube, tmp_path, table(cf), clock=clock)
    assert (await send(sidecar, old)).status == 200
    new = a_record("new", ["192.0.2.1"])
    kube.fake.set_dns_record("apps", "web", new)
    await wanted(sidecar, "new.example.com")
    assert (await send(sidecar, new)).status == 200

    cf.emulator.stats.clear()
    first = await sweeper(sidecar).sweep(act=True)
    assert cf.calls() == {LIST: 2}  # one listing per zone (example.com, example.org)
    assert first.done == []
    status = (await (await start_management(sidecar)).call("GET", "/status")).body
    sweeps = status["dnsRecords"]["sweeps"]
    assert sweeps["orphans"] == [
        {
            "kind": "orphan",
            "zone": "example.com",
            "name": "old.example.com",
            "type": "A",
            "values": ["192.0.2.1"],
            "ttl": 300,
            "dnsClass": "public",
            "reason": "No DNSRecord of DNSClass public wants it any more (renamed, retyped, "
            "deleted while the DNSClass was gone, or its finalizer removed by hand).",
            "fix": "prune",
            "since": "2026-01-01T00:00:00Z",
            "sweeps": 1,
        }
    ]
    assert (sweeps["drift"], sweeps["conflicts"]) == ([], [])
    assert sweeps["lastSweep"]["at"] == "2026-01-01T00:00:00Z"

    clock.advance(599)
    assert (await sweeper(sidecar).sweep(act=True)).done == []
    assert [r[1] for r in at(cf)] == ["new.example.com", "old.example.com"]

    clock.advance(1)
    with caplog.at_level(logging.INFO, logger="sidecar.sweeps.sweeper"):
        third = await sweeper(sidecar).sweep(act=True)
    assert [(f.fqdn, what) for f, what in third.done] == [
        ("old.example.com", "pruned (1 value(s) removed)")
    ]
    assert at(cf) == [("A", "new.example.com", "192.0.2.1", 300, MARK)]
    pruned = [r.getMessage() for r in caplog.records if "pruned" in r.getMessage()]
    assert pruned == [
        (
            "sweep pruned orphan A old.example.com in zone example.com (DNSClass public, an "
            "orphan since 2026-01-01T00:00:00Z): removed 1 value(s): 192.0.2.1"
        )
    ]


async def test_a_dnsclass_deleted_before_its_records_leaves_orphans(
    kube: RunningKube, start_sidecar: StartSidecar, tmp_path: Path, cf: RunningEmulator
) -> None:
    """The DNSClass goes first, then its DNSRecords (the operator drops their finalizers and
    never calls the backend): every set of that class is an orphan, pruned after the grace."""
    kube.fake.set_dns_class("public", PUBLIC)
    specs = [a_record("a", ["192.0.2.1"]), a_record("b", ["192.0.2.2"])]
    for index, spec in enumerate(specs):
        kube.fake.set_dns_record("apps", f"r{index}", spec)
    clock = FrozenClock()
    sidecar = await start(start_sidecar, kube, tmp_path, table(cf), clock=clock)
    assert [(await send(sidecar, spec)).status for spec in specs] == [200, 200]
    kube.fake.delete("DNSClass", "", "public")
    for index in range(len(specs)):
        kube.fake.delete("DNSRecord", "apps", f"r{index}")
    await wanted(sidecar)
    found = await sweeper(sidecar).sweep(act=True)
    assert sorted((f.kind.value, f.fqdn) for f in found.findings) == [
        ("orphan", "a.example.com"),
        ("orphan", "b.example.com"),
    ]
    clock.advance(600)
    await sweeper(sidecar).sweep(act=True)
    assert at(cf) == []


async def test_sets_of_another_class_deployment_or_the_old_marker_are_never_pruned(
    kube: RunningKube,
    start_sidecar: StartSidecar,
    start_management: StartManagement,
    tmp_path: Path,
    cf: RunningEmulator,
) -> None:
    """Under orphans: prune, past the grace: a set carrying the old bare marker is reported and
    kept; a set another deployment wrote, and one of class internal that a DNSRecord of
    internal still wants, are not orphans at all; none is deleted."""
    kube.fake.set_dns_class("public", PUBLIC)
    kube.fake.set_dns_class("internal", INTERNAL)
    intra = a_record("intra", ["10.0.0.1"], "internal")
    kube.fake.set_dns_record("ops", "intra", intra)
    clock = FrozenClock()
    sidecar = await start(start_sidecar, kube, tmp_path, table(cf), clock=clock)
    stamp = format_timestamp(datetime.fromtimestamp(clock.time(), UTC))  # the frozen clock's now
    signed = await send(sidecar, intra, secret=b"internal-secret", timestamp=stamp)
    assert signed.status == 200
    foreign(cf, "legacy", "192.0.2.7", comment="managed by dns-sidecar")
    foreign(cf, "theirs", "192.0.2.8", comment="managed by dns-sidecar (owner=lab, class=public)")
    before = at(cf)
    for _ in range(3):
        await sweeper(sidecar).sweep(act=True)
        clock.advance(1000)
    assert at(cf) == before
    assert ("A", "intra.example.com", "10.0.0.1", 300, (
        "managed by dns-sidecar (owner=dns-sidecar, class=internal)"
    )) in before  # fmt: skip
    status = (await (await start_management(sidecar)).call("GET", "/status")).body
    orphans = status["dnsRecords"]["sweeps"]["orphans"]
    assert [(o["name"], o["fix"], o["sweeps"]) for o in orphans] == [
        ("legacy.example.com", None, 3)
    ]


async def test_drift_made_at_the_provider_is_reported_then_repaired(  # noqa: PLR0917 - fixtures
    kube: RunningKube,
    start_sidecar: StartSidecar,
    start_management: StartManagement,
    tmp_path: Path,
    cf: RunningEmulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A value edited and a record deleted by hand at Cloudflare: reported under drift: report
    (nothing written), repaired once the table says drift: repair, through the upsert path."""
    kube.fake.set_dns_class("public", PUBLIC)
    www, api = a_record("www", ["192.0.2.1"]), a_record("api", ["192.0.2.2"], ttl=600)
    kube.fake.set_dns_record("apps", "www", www)
    kube.fake.set_dns_record("apps", "api", api)
    sidecar = await start(start_sidecar, kube, tmp_path, table(cf, drift="report"))
    assert [(await send(sidecar, spec)).status for spec in (www, api)] == [200, 200]
    state = cf.emulator.state
    zone = state.zones[COM]
    for record in list(zone.records.values()):
        if record["name"] == "www.example.com":  # edited in the dashboard
            state.update(zone, record["id"], {"content": "198.51.100.66"}, partial=True)
        else:  # deleted there
            state.delete(zone, record["id"])

    cf.emulator.stats.clear()
    reported = await sweeper(sidecar).sweep(act=True)
    assert cf.emulator.writes() == 0
    status = (await (await start_management(sidecar)).call("GET", "/status")).body
    drift = status["dnsRecords"]["sweeps"]["drift"]
    assert [(d["name"], d["values"], d["wanted"], d["reason"]) for d in drift] == [
        (
            "api.example.com",
            [],
            {"values": ["192.0.2.2"], "ttl": 600},
            "DNSRecord apps/api (DNSClass public): missing: the provider holds no such set.",
        ),
        (
            "www.example.com",
            ["198.51.100.66"],
            {"values": ["192.0.2.1"], "ttl": 300},
            "DNSRecord apps/www (DNSClass public): holds 198.51.100.66, wanted 192.0.2.1.",
        ),
    ]
    assert reported.done == []

    generation = sidecar.app[LIVE].generation
    (tmp_path / "routing.yaml").write_text(table(cf, drift="repair"))
    await eventually(lambda: sidecar.app[LIVE].generation > generation)
    with caplog.at_level(logging.INFO, logger="sidecar.sweeps.sweeper"):
        repaired = await sweeper(sidecar).sweep(act=True)
    assert [(f.fqdn, what) for f, what in repaired.done] == [
        ("api.example.com", "repaired (created)"),
        ("www.example.com", "repaired (updated)"),
    ]
    assert [(r[1], r[2], r[3]) for r in at(cf)] == [
        ("api.example.com", "192.0.2.2", 600),
        ("www.example.com", "192.0.2.1", 300),
    ]
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("sweep repaired")]
    assert lines[1] == (
        "sweep repaired A www.example.com in zone example.com for apps/www (DNSClass public): "
        "updated; now 192.0.2.1, TTL 300"
    )
    assert (await sweeper(sidecar).sweep(act=True)).findings == []


async def test_a_foreign_record_is_a_conflict_never_touched(
    kube: RunningKube,
    start_sidecar: StartSidecar,
    start_management: StartManagement,
    tmp_path: Path,
    cf: RunningEmulator,
) -> None:
    """A record nobody marked, at a name a DNSRecord wants: a conflict on /status and in the
    metric; with prune and repair on, nothing is written."""
    kube.fake.set_dns_class("public", PUBLIC)
    kube.fake.set_dns_record("apps", "www", a_record("www", ["192.0.2.1"]))
    foreign(cf, "www", "198.51.100.7")
    foreign(cf, "elsewhere", "198.51.100.8")
    clock = FrozenClock()
    sidecar = await start(start_sidecar, kube, tmp_path, table(cf), clock=clock)
    cf.emulator.stats.clear()
    for _ in range(3):
        await sweeper(sidecar).sweep(act=True)
        clock.advance(1000)
    assert cf.emulator.writes() == 0
    management = await start_management(sidecar)
    status = (await management.call("GET", "/status")).body
    conflicts = status["dnsRecords"]["sweeps"]["conflicts"]
    assert [(c["name"], c["values"]) for c in conflicts] == [("www.example.com", ["198.51.100.7"])]
    metrics = (await management.call("GET", "/metrics")).body
    assert 'dns_sidecar_record_conflicts{zone="example.com"} 1.0' in metrics
    assert 'dns_sidecar_orphaned_record_sets{zone="example.com"} 0.0' in metrics


async def test_the_watch_dropped_during_a_sweep_prunes_nothing(
    kube: RunningKube, start_sidecar: StartSidecar, tmp_path: Path, cf: RunningEmulator
) -> None:
    """The API server drops the DNSRecord watch while the zone is being listed: the sweep says
    so and prunes nothing, though the orphan is past its grace."""
    sidecar, clock = await orphaned(start_sidecar, kube, tmp_path, table(cf))
    await sweeper(sidecar).sweep(act=True)
    clock.advance(10_000)
    index = sidecar.app[DNS_RECORDS]
    generation = index.generation
    cf.emulator.delay(0.5, path=f"/zones/{COM}/dns_records")
    sweep = asyncio.ensure_future(sweeper(sidecar).sweep(act=True))
    await eventually(lambda: cf.calls().get(LIST, 0) >= 1)
    kube.fake.drop_watches()
    await eventually(lambda: index.generation != generation)
    result = await sweep
    assert result.skipped == "the DNSRecord watch restarted during the sweep"
    assert result.done == []
    assert [r[1] for r in at(cf)] == ["old.example.com"]


async def test_the_loop_costs_one_listing_per_zone_per_sweep(
    kube: RunningKube,
    start_sidecar: StartSidecar,
    start_management: StartManagement,
    tmp_path: Path,
    cf: RunningEmulator,
) -> None:
    """Sweeping every second: each sweep lists each zone once (all pages) and nothing else, and
    /status shows the loop and the last sweep."""
    kube.fake.set_dns_class("public", PUBLIC)
    kube.fake.set_dns_record("apps", "www", a_record("www", ["192.0.2.1"]))
    cf.emulator.records_per_page = 2
    for i in range(5):
        foreign(cf, f"h{i}", "192.0.2.9", comment=MARK)
    sidecar = await start(
        start_sidecar, kube, tmp_path, table(cf, orphans="report"), sweeps={"interval": 1}
    )
    await eventually(lambda: sweeper(sidecar).sweeps >= 1)
    cf.emulator.stats.clear()
    done = sweeper(sidecar).sweeps
    await eventually(lambda: sweeper(sidecar).sweeps >= done + 2)
    swept = sweeper(sidecar).sweeps - done
    # example.com: 6 records at 2 a page (3 pages), example.org: empty (1 page)
    assert cf.calls() in ({LIST: 4 * swept}, {LIST: 4 * swept + 4}, {LIST: 4 * swept + 1})
    status = (await (await start_management(sidecar)).call("GET", "/status")).body
    assert status["loops"]["sweeps"]["running"] is True
    assert status["dnsRecords"]["sweeps"]["turn"] == "this replica sweeps"
    assert len(status["dnsRecords"]["sweeps"]["orphans"]) == 5


async def test_two_replicas_on_redis_sweep_once_per_interval(
    kube: RunningKube,
    start_sidecar: StartSidecar,
    tmp_path: Path,
    cf: RunningEmulator,
    redis_server: RedisServer,
) -> None:
    """Two replicas sharing Redis, both sweeping every second: one holds the turn and sweeps,
    the other does not; the emulator sees one listing per zone per sweep, for both together."""
    kube.fake.set_dns_class("public", PUBLIC)
    kube.fake.set_dns_record("apps", "www", a_record("www", ["192.0.2.1"]))
    options = {"sweeps": {"interval": 1}, "redis": {"url": redis_server.url}}
    first = await start(start_sidecar, kube, tmp_path, table(cf), **options)
    second = await start(start_sidecar, kube, tmp_path, table(cf), **options)
    both = (sweeper(first), sweeper(second))
    await eventually(lambda: sum(s.sweeps for s in both) >= 1)
    cf.emulator.stats.clear()
    before = [s.sweeps for s in both]
    await eventually(lambda: sum(s.sweeps for s in both) >= sum(before) + 3)
    after = [s.sweeps for s in both]
    swept = sum(after) - sum(before)
    assert min(after) == 0  # one replica holds the turn throughout
    assert sorted(s.turn for s in both) == ["another replica sweeps", "this replica sweeps"]
    assert cf.calls()[LIST] in (2 * swept, 2 * swept + 1, 2 * swept + 2)


async def test_a_repair_moves_a_wanted_legacy_set_to_the_owner_marker(
    kube: RunningKube, start_sidecar: StartSidecar, tmp_path: Path, cf: RunningEmulator
) -> None:
    """An existing installation moving over: a set with the bare comment that a DNSRecord wants
    is drift while its marker names no class; drift: repair rewrites only the comment (one
    batch), and the next sweep finds nothing."""
    kube.fake.set_dns_class("public", PUBLIC)
    kube.fake.set_dns_record("apps", "www", a_record("www", ["192.0.2.1"]))
    foreign(cf, "www", "192.0.2.1", comment="managed by dns-sidecar")
    sidecar = await start(start_sidecar, kube, tmp_path, table(cf))
    cf.emulator.stats.clear()
    done = (await sweeper(sidecar).sweep(act=True)).done
    assert [(f.fqdn, what) for f, what in done] == [("www.example.com", "repaired (updated)")]
    assert at(cf) == [("A", "www.example.com", "192.0.2.1", 300, MARK)]
    assert cf.calls() == {
        LIST: 3,  # the sweep's two zones, and the upsert's read of the name
        "POST /zones/{zone_id}/dns_records/batch": 1,
    }
    assert (await sweeper(sidecar).sweep(act=True)).findings == []


async def test_a_prune_under_ownership_adopt_leaves_foreign_values_at_the_name(
    kube: RunningKube, start_sidecar: StartSidecar, tmp_path: Path, cf: RunningEmulator
) -> None:
    """Under ``ownership: adopt`` (or ``off``) a prune still removes only the orphan's own
    values: a record a person added beside it at the same name and type stays."""
    text = table(cf).replace("defaults: {", "defaults: {ownership: adopt, ")
    sidecar, clock = await orphaned(start_sidecar, kube, tmp_path, text)
    foreign(cf, "old", "198.51.100.9")
    assert (await sweeper(sidecar).sweep(act=True)).done == []
    clock.advance(600)
    last = await sweeper(sidecar).sweep(act=True)
    assert [(f.fqdn, what) for f, what in last.done] == [
        ("old.example.com", "pruned (1 value(s) removed)")
    ]
    assert at(cf) == [("A", "old.example.com", "198.51.100.9", 300, None)]


async def test_a_prune_leaves_a_value_under_the_old_marker_at_the_same_name(
    kube: RunningKube, start_sidecar: StartSidecar, tmp_path: Path, cf: RunningEmulator
) -> None:
    """An orphan of class public shares its name and type with a value under the marker from
    before owners: the prune removes the orphan's value only (the old marker is never pruned)."""
    sidecar, clock = await orphaned(start_sidecar, kube, tmp_path, table(cf))
    foreign(cf, "old", "192.0.2.7", comment="managed by dns-sidecar")
    assert (await sweeper(sidecar).sweep(act=True)).done == []
    clock.advance(600)
    last = await sweeper(sidecar).sweep(act=True)
    assert [(f.fqdn, what) for f, what in last.done] == [
        ("old.example.com", "pruned (1 value(s) removed)")
    ]
    assert at(cf) == [("A", "old.example.com", "192.0.2.7", 300, "managed by dns-sidecar")]


async def test_the_dnsclass_default_ttl_is_wanted_when_a_dnsrecord_has_none(
    kube: RunningKube, start_sidecar: StartSidecar, tmp_path: Path, cf: RunningEmulator
) -> None:
    """A DNSRecord without spec.ttl, its DNSClass with defaultTTL 900 (what the operator sends;
    the zone's default is 300): the sweep, reading the DNSClass from its watch, finds no drift;
    once the DNSClass says 1200, the set is drift wanting 1200; once the DNSClass is gone, the
    TTL wanted is unknown: no drift, and no repair to the zone's 300."""
    slow = PUBLIC | {"defaultTTL": 900}
    kube.fake.set_dns_class("public", slow)
    www = a_record("www", ["192.0.2.1"])
    kube.fake.set_dns_record("apps", "www", www)
    sidecar = await start(start_sidecar, kube, tmp_path, table(cf))
    reply = await sidecar.caller.call("POST", "/records", operator_upsert(www, slow))
    assert reply.body["record"]["ttl"] == 900
    assert (await sweeper(sidecar).sweep(act=True)).findings == []
    kube.fake.set_dns_class("public", PUBLIC | {"defaultTTL": 1200})

    async def drift() -> bool:
        found = (await sweeper(sidecar).sweep(act=False)).findings
        return [f.reason for f in found] == [
            "DNSRecord apps/www (DNSClass public): holds TTL 900, wanted 1200."
        ]

    await eventually(drift)
    kube.fake.delete("DNSClass", "", "public")  # the TTL it wants is now unknown: no drift

    async def quiet() -> bool:
        return (await sweeper(sidecar).sweep(act=True)).findings == []

    await eventually(quiet)
    assert at(cf) == [("A", "www.example.com", "192.0.2.1", 900, MARK)]
