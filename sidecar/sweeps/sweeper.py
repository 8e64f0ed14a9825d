"""The sweep: every zone routed for a ``{dnsClass}`` client, listed once, compared with the
DNSRecords, and acted on as the zone allows (SPEC section 9).

:meth:`Sweeper.sweep` is one pass (``act=False`` for ``audit``); :meth:`Sweeper.run_forever`
the supervised loop: every interval, the replica holding the turn (``coordination.turns``: with
Redis one replica for all) sweeps. Nothing is pruned or repaired unless the DNSRecord view was
synced from before the listings until the change, its generation did not move, and the zone's
listing succeeded; an orphan is pruned only once it has stood for the grace period across two
sweeps or more, and only a set this deployment wrote for a DNSClass it serves.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from sidecar.auth.clients import Client
from sidecar.clock import Clock
from sidecar.config.live import LiveConfig
from sidecar.config.runtime import Runtime
from sidecar.coordination.base import Turns
from sidecar.dnsrecords import DnsRecordView, WantedRecord
from sidecar.errors import SidecarError
from sidecar.providers.base import Drift, Orphans
from sidecar.providers.ownership import Owner
from sidecar.records.names import is_within
from sidecar.routing.table import Route
from sidecar.settings import SweepSettings
from sidecar.sweeps.metrics import SweepMetrics
from sidecar.sweeps.plan import (
    Finding,
    Fix,
    Kind,
    SetKey,
    Wants,
    plan_zone,
    same_set,
    wanted_set,
)

log = logging.getLogger(__name__)

TURN = "sweep"


@dataclass(frozen=True, slots=True)
class ZoneResult:
    zone: str
    account: str
    classes: tuple[str, ...]
    error: str | None = None  # the listing failed: nothing decided for this zone


@dataclass
class Sweep:
    """What one sweep found and did."""

    started: float  # wall clock
    duration: float = 0.0
    skipped: str | None = None  # why it did not look at all
    zones: list[ZoneResult] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    done: list[tuple[Finding, str]] = field(default_factory=list)  # (finding, what happened)

    @property
    def complete(self) -> bool:
        """It looked at every zone it should have."""
        return self.skipped is None and all(z.error is None for z in self.zones)


@dataclass
class _Seen:
    since: float  # wall clock of the first sweep that found it
    since_monotonic: float
    sweeps: int = 1


class Sweeper:
    def __init__(
        self,
        live: LiveConfig,
        view: DnsRecordView,
        settings: SweepSettings,
        *,
        deployment: str,
        clock: Clock,
        turns: Turns,
        metrics: SweepMetrics | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.live = live
        self.view = view
        self.settings = settings
        self.deployment = deployment  # DNS_SIDECAR_OWNER_ID: whose markers are ours
        self.clock = clock
        self.turns = turns
        self.metrics = metrics
        self._sleep = sleep
        self._seen: dict[tuple[str, str, str, str, str], _Seen] = {}
        self.last: Sweep | None = None
        self.sweeps = 0  # completed passes of this replica (tests wait on it)
        self.turn: str = "not taken yet"
        self._generation = -1  # of the DNSRecord view when the last pass began looking

    # --- the loop ---------------------------------------------------------------------------

    async def run_forever(self) -> None:
        """A sweep every interval by the replica holding the turn; never returns."""
        interval = self.settings.interval
        while True:
            await self._sleep(interval)
            try:
                mine = await self.turns.take(TURN, 2 * interval + 30)
            except SidecarError as err:
                self.turn = f"unknown: {err.message}"
                continue
            if not mine:
                self.turn = "another replica sweeps"
                continue
            self.turn = "this replica sweeps"
            await self.sweep(act=True)

    # --- one pass ---------------------------------------------------------------------------

    async def sweep(self, *, act: bool) -> Sweep:
        """Look at every zone routed for a ``{dnsClass}`` client; with ``act``, prune and repair
        as each zone allows. Never raises for a provider's failure (the zone says why)."""
        started = time.perf_counter()
        result = Sweep(started=self.clock.time())
        runtime = self.live.pin()
        try:
            await self._look(runtime, result)
            self._remember(result)
            if act and result.skipped is None:
                await self._act(result)
        finally:
            self.live.release(runtime)
            result.duration = time.perf_counter() - started
            self.last = result
            self.sweeps += 1
            self._count(result)
        return result

    async def _look(self, runtime: Runtime, result: Sweep) -> None:
        view = self.view
        if not view.synced:
            result.skipped = "the DNSRecord list is not synced yet"
            return
        generation = view.generation
        classes = sorted(view.classes() & {c.dns_class for c in _class_clients(runtime)})
        wanted = {c: view.wanted(c) for c in classes}
        wants_keys = {c: frozenset((r.key.type, r.key.fqdn) for r in wanted[c]) for c in classes}
        ttls: dict[str, int | None] = {}
        unread: dict[str, str] = {}
        for dns_class in classes:
            try:
                ttls[dns_class] = view.default_ttl(dns_class)
            except SidecarError as err:
                unread[dns_class] = err.message
        here = _by_zone(runtime, wanted)
        for route, served in _swept_routes(runtime, classes):
            zone = route.zone
            result.zones.append(ZoneResult(zone.name, route.account.name, served))
            try:
                held = await route.account.provider.held(zone)
            except SidecarError as err:
                result.zones[-1] = replace(result.zones[-1], error=err.message)
                log.warning("sweep: could not list zone %s: %s", zone.name, err.message)
                continue
            wants = Wants(here.get(_zone_key(route), []), wants_keys, ttls, view.namespaces, unread)
            found = plan_zone(zone, held, wants, deployment=self.deployment)
            result.findings += [replace(f, account=route.account.name) for f in found]
        result.findings.sort(key=lambda f: (f.zone, f.account, f.fqdn, f.type, f.kind.value))
        if not view.synced or view.generation != generation:
            result.skipped = "the DNSRecord watch restarted during the sweep"
        self._generation = generation

    def _remember(self, result: Sweep) -> None:
        """Since when each finding stands (a finding gone is forgotten); a zone that could not
        be listed keeps what it had."""
        if result.skipped is not None:
            return
        now, mono = self.clock.time(), self.clock.monotonic()
        failed = {(z.zone, z.account) for z in result.zones if z.error is not None}
        seen: dict[tuple[str, str, str, str, str], _Seen] = {
            key: kept for key, kept in self._seen.items() if (key[1], key[2]) in failed
        }
        for finding in result.findings:
            kept = self._seen.get(finding.identity)
            if kept is None:
                seen[finding.identity] = _Seen(now, mono)
            else:
                kept.sweeps += 1
                seen[finding.identity] = kept
        self._seen = seen

    async def _act(self, result: Sweep) -> None:
        runtime = self.live.current
        routes = {_zone_key(route): route for route in runtime.table}
        failed = {(z.zone, z.account) for z in result.zones if z.error is not None}
        for finding in result.findings:
            where = (finding.zone, finding.account)
            route = routes.get(where)
            if route is None or where in failed or finding.fix is None:
                continue
            if finding.fix is Fix.PRUNE and route.zone.orphans is Orphans.PRUNE:
                if self._due(finding):
                    await self._do(result, finding, route, self._prune)
            elif finding.fix is Fix.REPAIR and route.zone.drift is Drift.REPAIR:
                await self._do(result, finding, route, self._repair)

    def _due(self, finding: Finding) -> bool:
        seen = self._seen.get(finding.identity)
        return (
            seen is not None
            and seen.sweeps >= 2
            and self.clock.monotonic() - seen.since_monotonic >= self.settings.orphan_grace
        )

    def _still(self) -> str | None:
        """Why nothing may be changed now, or ``None``."""
        if not self.view.synced or self.view.generation != self._generation:
            return "the DNSRecord watch restarted"
        return None

    async def _do(
        self,
        result: Sweep,
        finding: Finding,
        route: Route,
        work: Callable[[Finding, Route], Awaitable[str]],
    ) -> None:
        stop = self._still()
        if stop is not None:
            result.done.append((finding, f"not done: {stop}"))
            return
        try:
            what = await work(finding, route)
        except SidecarError as err:
            what = f"failed: {err.message}"
            log.warning(
                "sweep: could not %s %s %s in zone %s: %s",
                finding.fix,
                finding.type,
                finding.fqdn,
                finding.zone,
                err.message,
            )
        result.done.append((finding, what))

    async def _prune(self, finding: Finding, route: Route) -> str:
        assert finding.dns_class is not None
        key = (finding.type, finding.fqdn)
        if any(_set_key(r) == key for r in self.view.wanted(finding.dns_class)):
            return "not done: a DNSRecord wants it again"
        # the orphan's own values only, whatever the zone's ownership mode: never a foreign
        # value, another owner's, or one under the marker from before owners beside it
        zone = replace(route.zone, owner=Owner(self.deployment, finding.dns_class))
        deleted = await route.account.provider.prune(zone, finding.key())
        since = self._since(finding)
        self._seen.pop(finding.identity, None)
        if self.metrics is not None:
            self.metrics.actions.labels("prune").inc()
        log.info(
            "sweep pruned orphan %s %s in zone %s (DNSClass %s, an orphan since %s): "
            "removed %d value(s): %s",
            finding.type,
            finding.fqdn,
            finding.zone,
            finding.dns_class,
            _iso(since),
            deleted.removed,
            ", ".join(finding.held),
            extra={"fields": {"sweep": "prune", "zone": finding.zone, "fqdn": finding.fqdn}},
        )
        return f"pruned ({deleted.removed} value(s) removed)"

    async def _repair(self, finding: Finding, route: Route) -> str:
        assert finding.wanted is not None
        assert finding.dns_class is not None
        now = [r for r in self.view.wanted(finding.dns_class) if _set_key(r) == _key_of(finding)]
        if not now:
            return "not done: no DNSRecord wants it any more"
        if not self._still_wanted(finding, route, now):
            return "not done: its DNSRecord changed during the sweep"
        zone = replace(route.zone, owner=Owner(self.deployment, finding.dns_class))
        outcome = await route.account.provider.upsert(zone, finding.wanted)
        if self.metrics is not None:
            self.metrics.actions.labels("repair").inc()
        log.info(
            "sweep repaired %s %s in zone %s for %s (DNSClass %s): %s; now %s, TTL %d",
            finding.type,
            finding.fqdn,
            finding.zone,
            ", ".join(finding.records),
            finding.dns_class,
            outcome.outcome.value,
            ", ".join(finding.wanted.values),
            finding.wanted.ttl,
            extra={"fields": {"sweep": "repair", "zone": finding.zone, "fqdn": finding.fqdn}},
        )
        return f"repaired ({outcome.outcome.value})"

    def _still_wanted(self, finding: Finding, route: Route, now: Sequence[WantedRecord]) -> bool:
        """The DNSRecords at the finding's name want, as the watch holds them now, the set the
        sweep planned (an edit delivered since would otherwise be reverted)."""
        assert finding.wanted is not None
        try:
            default_ttl = self.view.default_ttl(str(finding.dns_class))
            sets = [wanted_set(record, route.zone, default_ttl) for record in now]
        except SidecarError:
            return False
        return all(same_set(found, finding.wanted) for found in sets)

    # --- reporting --------------------------------------------------------------------------

    def _since(self, finding: Finding) -> float | None:
        seen = self._seen.get(finding.identity)
        return seen.since if seen is not None else None

    def _count(self, result: Sweep) -> None:
        if self.metrics is None or result.skipped is not None:
            return
        for gauge, kind in (
            (self.metrics.orphans, Kind.ORPHAN),
            (self.metrics.drift, Kind.DRIFT),
            (self.metrics.conflicts, Kind.CONFLICT),
        ):
            gauge.clear()
            for zone in result.zones:
                if zone.error is None:
                    count = sum(
                        1 for f in result.findings if f.kind is kind and f.zone == zone.zone
                    )
                    gauge.labels(zone.zone).set(count)

    def status(self) -> dict[str, Any]:
        """The sweeps for ``/status`` (``dnsRecords.sweeps``); no I/O."""
        body: dict[str, Any] = {
            "enabled": self.settings.interval > 0,  # DNS_SIDECAR_SWEEP_INTERVAL=0: off
            "intervalSeconds": self.settings.interval,
            "orphanGraceSeconds": self.settings.orphan_grace,
            "ownerId": self.deployment,
            "turn": self.turn,
        }
        last = self.last
        if last is None:
            return body | {"lastSweep": None}
        by_kind: dict[str, list[dict[str, Any]]] = {"orphans": [], "drift": [], "conflicts": []}
        names = {Kind.ORPHAN: "orphans", Kind.DRIFT: "drift", Kind.CONFLICT: "conflicts"}
        seen = self._seen
        for finding in last.findings:
            kept = seen.get(finding.identity)
            by_kind[names[finding.kind]].append(
                finding_json(finding)
                | {
                    "since": _iso(kept.since if kept else None),
                    "sweeps": kept.sweeps if kept else 0,
                }
            )
        return body | {
            "lastSweep": {
                "at": _iso(last.started),
                "durationSeconds": round(last.duration, 3),
                "skipped": last.skipped,
                "zones": [
                    {"zone": z.zone, "account": z.account, "dnsClasses": list(z.classes)}
                    | ({"error": z.error} if z.error else {})
                    for z in last.zones
                ],
                "actions": [
                    {
                        "action": f.fix.value if f.fix else None,
                        "zone": f.zone,
                        "name": f.fqdn,
                        "type": f.type,
                        "result": what,
                    }
                    for f, what in last.done
                ],
            },
            **by_kind,
        }


def finding_json(finding: Finding) -> dict[str, Any]:
    """One finding as ``/status`` and ``audit --json`` show it."""
    body: dict[str, Any] = {
        "kind": finding.kind.value,
        "zone": finding.zone,
        "name": finding.fqdn,
        "type": finding.type,
        "values": list(finding.held),
        "ttl": finding.held_ttl,
        "dnsClass": finding.dns_class,
        "reason": finding.reason,
        "fix": finding.fix.value if finding.fix else None,
    }
    if finding.wanted is not None:
        body["wanted"] = {"values": list(finding.wanted.values), "ttl": finding.wanted.ttl}
    if finding.records:
        body["dnsRecords"] = list(finding.records)
    return body


def _iso(stamp: float | None) -> str | None:
    if stamp is None:
        return None
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _set_key(record: WantedRecord) -> SetKey:
    return (record.key.type, record.key.fqdn)


def _key_of(finding: Finding) -> SetKey:
    return (finding.type, finding.fqdn)


def _class_clients(runtime: Runtime) -> list[Client]:
    return [c for c in runtime.clients if c.dns_class is not None]


ZoneKey = tuple[str, str]  # (zone name, account name): one entry of the routing table


def _zone_key(route: Route) -> ZoneKey:
    return (route.zone.name, route.account.name)


def _swept_routes(runtime: Runtime, classes: list[str]) -> list[tuple[Route, tuple[str, ...]]]:
    """Each routing table entry that a served class's client routes to and may change, once,
    with those classes (split horizon: one zone name may be two entries, for two clients)."""
    served: dict[ZoneKey, tuple[Route, set[str]]] = {}
    for client in _class_clients(runtime):
        if client.dns_class not in classes:
            continue
        for route in runtime.table.routes_for(client.name):
            if client.zones is not None and not any(
                is_within(z, route.zone.name) or is_within(route.zone.name, z) for z in client.zones
            ):
                continue
            entry = served.setdefault(_zone_key(route), (route, set()))
            entry[1].add(str(client.dns_class))
    return [(route, tuple(sorted(names))) for route, names in served.values()]


def _by_zone(
    runtime: Runtime, wanted: dict[str, Sequence[WantedRecord]]
) -> dict[ZoneKey, list[WantedRecord]]:
    """The DNSRecords of each class by the entry their upserts route to (through a client of
    their class that may change the name); a name no zone covers is left out."""
    clients: dict[str, list[Client]] = {}
    for client in _class_clients(runtime):
        clients.setdefault(str(client.dns_class), []).append(client)
    here: dict[ZoneKey, list[WantedRecord]] = {}
    for dns_class, records in wanted.items():
        mine = clients.get(dns_class, [])
        for record in records:
            fqdn = record.key.fqdn
            caller = next((c for c in mine if c.may_change(fqdn)), None)
            if caller is None:
                continue
            try:
                route = runtime.table.resolve(fqdn, caller.name)
            except SidecarError:
                continue
            here.setdefault(_zone_key(route), []).append(record)
    return here
