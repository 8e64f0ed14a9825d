"""The Cloudflare provider: record sets as one record per value, changed in one batch.

An upsert reads the name once (every type, so a CNAME in the way is seen), checks ownership,
plans the difference and applies it in one ``dns_records/batch`` call: 2 calls for a change,
1 and no write for an unchanged set. A delete removes only what it may, in one batch. Writes to
the same name and type are serialised under the write lock its ``coordination`` gives (in-process,
or shared by replicas), and the batch is sent only while the lock's lease covers it.

Two answers are recovered from once: a zone id Cloudflare no longer knows is looked up again
(the zone was re-created), and a batch naming a record removed meanwhile is planned again from a
fresh read (still under the lock); a second such answer goes to the caller.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sidecar.clock import Clock
from sidecar.coordination.base import Lease, WriteLocks, ZoneVersions
from sidecar.errors import RecordConflict
from sidecar.providers.base import (
    ROOT,
    DeleteResult,
    Health,
    HeldSet,
    Outcome,
    Ownership,
    UpsertResult,
    ZonePolicy,
)
from sidecar.providers.cloudflare import diff
from sidecar.providers.cloudflare.client import CloudflareApi, RecordGone, ZoneGone
from sidecar.providers.cloudflare.mapping import CloudflareRecord, effective, from_api
from sidecar.providers.cloudflare.payloads import RecordBody, RecordId, RecordPatch
from sidecar.providers.cloudflare.readcache import Index, ZoneReadCache
from sidecar.providers.cloudflare.zones import CloudflareZone, ZoneDirectory
from sidecar.providers.ownership import Mark, read
from sidecar.records import RecordKey, RecordSet
from sidecar.records.names import is_within

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _AtName:
    same_type: list[CloudflareRecord]
    in_the_way: list[CloudflareRecord]  # a CNAME beside others, or others beside a CNAME


class CloudflareProvider:
    kind = "cloudflare"

    def __init__(
        self,
        api: CloudflareApi,
        clock: Clock,
        *,
        locks: WriteLocks,
        versions: ZoneVersions,
        read_cache_seconds: float = 0.0,
    ) -> None:
        self.api = api
        self.zones = ZoneDirectory(api, clock)
        self.read_cache = ZoneReadCache(read_cache_seconds, clock, versions)
        self._locks = locks

    async def upsert(self, zone: ZonePolicy, record: RecordSet) -> UpsertResult:
        async def upsert_in(target: CloudflareZone) -> UpsertResult:
            key = (target.id, record.key.fqdn, record.key.type)
            async with self._locks.hold(key) as lease:
                return await _once_more_if_gone(lambda: self._write(target, zone, record, lease))

        return await self._in_zone(zone, record.key.fqdn, upsert_in)

    async def _write(
        self, target: CloudflareZone, zone: ZonePolicy, record: RecordSet, lease: Lease
    ) -> UpsertResult:
        """Read the name, check ownership, plan and apply the difference (under the lock)."""
        kind, fqdn = record.key.type, record.key.fqdn
        ttl, proxied = effective(kind, record.ttl, zone.proxied)
        at_name = await self._read_name(target, kind, fqdn)
        if at_name.in_the_way:
            raise _in_the_way(fqdn, kind, at_name.in_the_way)
        mine, foreign = _split(at_name.same_type, zone)
        if foreign:
            raise _not_ours(fqdn, kind, foreign, zone)
        want = diff.Desired(
            kind,
            fqdn,
            record.values,
            ttl,
            proxied,
            zone.owner.marker(zone.comment),
            # ours (strict: legacy markers move to the owner's) or adopted; off: left as is
            mark_existing=zone.ownership is not Ownership.OFF,
        )
        plan = diff.plan(mine, want)
        result = RecordSet(record.key, record.values, ttl)
        if plan.empty:
            return UpsertResult(Outcome.UNCHANGED, result)
        lease.ensure(self.api.timeout)
        await self._apply(target, plan.deletes, plan.patches, plan.posts)
        return UpsertResult(Outcome.UPDATED if mine else Outcome.CREATED, result)

    async def get(self, zone: ZonePolicy, key: RecordKey) -> RecordSet | None:
        async def get_in(target: CloudflareZone) -> list[CloudflareRecord]:
            if self.read_cache.enabled:
                index = await self.read_cache.records(target.id, lambda: self._zone_index(target))
                return index.get((key.fqdn, key.type), [])
            raw = await self.api.list_records(target.id, name=key.fqdn, kind=key.type)
            return [from_api(r) for r in raw]

        found = await self._in_zone(zone, key.fqdn, get_in)
        if not found:
            return None
        values = tuple(dict.fromkeys(r.value for r in found))
        return RecordSet(key, values, min(r.ttl for r in found))

    async def delete(self, zone: ZonePolicy, key: RecordKey) -> DeleteResult:
        return await self._remove_in(zone, key, _split)

    async def prune(self, zone: ZonePolicy, key: RecordKey) -> DeleteResult:
        return await self._remove_in(zone, key, _made_by)

    async def _remove_in(self, zone: ZonePolicy, key: RecordKey, split: _Splitter) -> DeleteResult:
        async def delete_in(target: CloudflareZone) -> DeleteResult:
            async with self._locks.hold((target.id, key.fqdn, key.type)) as lease:
                return await _once_more_if_gone(
                    lambda: self._remove(target, zone, key, lease, split)
                )

        return await self._in_zone(zone, key.fqdn, delete_in)

    async def _remove(
        self,
        target: CloudflareZone,
        zone: ZonePolicy,
        key: RecordKey,
        lease: Lease,
        split: _Splitter,
    ) -> DeleteResult:
        """Read the name and remove what ``split`` says is ours to remove (under the lock)."""
        raw = await self.api.list_records(target.id, name=key.fqdn, kind=key.type)
        mine, foreign = split([from_api(r) for r in raw], zone)
        if mine:
            lease.ensure(self.api.timeout)
            await self._apply(target, [{"id": r.id} for r in mine], [], [])
        return DeleteResult(removed=len(mine), left=tuple(r.describe() for r in foreign))

    async def _in_zone(
        self, zone: ZonePolicy, fqdn: str, step: Callable[[CloudflareZone], Awaitable[T]]
    ) -> T:
        """``step`` in the zone that covers ``fqdn``; once more with the id looked up again if
        Cloudflare no longer knows the cached one."""
        target = await self.zones.zone_for(zone, fqdn)
        try:
            return await step(target)
        except ZoneGone:
            if not self.zones.forget(zone, target):
                raise
        return await step(await self.zones.zone_for(zone, fqdn))

    async def held(self, zone: ZonePolicy) -> list[HeldSet]:
        """One listing of the zone (all pages); with a zone named ``.``, one per zone the
        account holds."""
        if zone.name == ROOT and not zone.zone_id:
            targets = await self.zones.every_zone()
        else:
            targets = [await self.zones.zone_for(zone, zone.name)]
        found: list[HeldSet] = []
        for target in targets:
            by_set: dict[tuple[str, str], list[CloudflareRecord]] = {}
            for raw in await self.api.list_records(target.id):
                record = from_api(raw)
                if zone.name == ROOT or is_within(record.name, zone.name):
                    by_set.setdefault((record.type, record.name), []).append(record)
            found += [_held(kind, name, records, zone) for (kind, name), records in by_set.items()]
        return found

    async def health(self) -> Health:
        try:
            if self.api.client().api_token is not None:
                status = await self.api.verify_token()
                if status != "active":
                    return Health(healthy=False, message=f"API token is {status}")
            else:
                await self.api.list_zones()
        except Exception as err:  # noqa: BLE001 - any failure is "unhealthy", with its reason
            return Health(healthy=False, message=getattr(err, "message", str(err)))
        budget = self.api.budget.state()
        return Health(
            healthy=True,
            message=f"API reachable; {budget.remaining}/{budget.requests} requests left in the "
            f"{budget.per_seconds:g} s window",
        )

    def status(self) -> dict[str, Any]:
        budget = self.api.budget.state()
        return {
            "budget": {
                "requests": budget.requests,
                "perSeconds": budget.per_seconds,
                "remaining": budget.remaining,
                "blockedForSeconds": round(budget.blocked_for, 1),
            },
            "readCacheSeconds": self.read_cache.seconds,
        }

    async def aclose(self) -> None:
        await self.zones.aclose()
        await self.read_cache.aclose()
        await self.api.aclose()

    async def _apply(
        self,
        zone: CloudflareZone,
        deletes: list[RecordId],
        patches: list[RecordPatch],
        posts: list[RecordBody],
    ) -> None:
        """One batch, and the zone's read cache invalidated whatever its outcome: a batch that
        timed out or failed may still have been applied, and a retry that then finds nothing
        to change writes (and invalidates) nothing."""
        try:
            await self.api.batch(zone.id, deletes=deletes, patches=patches, posts=posts)
        finally:
            await self.read_cache.invalidate(zone.id)

    async def _zone_index(self, zone: CloudflareZone) -> Index:
        """The whole zone, read once, indexed by (name, type) for the read cache."""
        index: Index = {}
        for raw in await self.api.list_records(zone.id):
            record = from_api(raw)
            index.setdefault((record.name, record.type), []).append(record)
        return index

    async def _read_name(self, zone: CloudflareZone, kind: str, fqdn: str) -> _AtName:
        records = [from_api(r) for r in await self.api.list_records(zone.id, name=fqdn)]
        same = [r for r in records if r.type == kind]
        if kind == "CNAME":
            way = [r for r in records if r.type != "CNAME"]
        else:
            way = [r for r in records if r.type == "CNAME"]
        return _AtName(same, way)


async def _once_more_if_gone(step: Callable[[], Awaitable[T]]) -> T:
    """``step``, and once more (a fresh read, a new plan) if its batch named a record that was
    removed meanwhile; a second time, the 503 goes to the caller, whose retry will do."""
    try:
        return await step()
    except RecordGone:
        return await step()


_Split = tuple[list[CloudflareRecord], list[CloudflareRecord]]  # (ours to remove, the rest)
_Splitter = Callable[[list[CloudflareRecord], ZonePolicy], _Split]


def _split(records: list[CloudflareRecord], zone: ZonePolicy) -> _Split:
    """(ours to change, foreign) under the zone's ownership mode: under ``strict``, ours are
    the records this client's owner wrote, and those marked before owners existed."""
    if zone.ownership is not Ownership.STRICT:
        return records, []
    mine: list[CloudflareRecord] = []
    foreign: list[CloudflareRecord] = []
    for record in records:
        mark = read(record.comment, zone.comment)
        (mine if mark is not None and mark.writable_by(zone.owner) else foreign).append(record)
    return mine, foreign


def _made_by(records: list[CloudflareRecord], zone: ZonePolicy) -> _Split:
    """(those carrying ``zone.owner``'s own marker, the rest), whatever the ownership mode."""
    mine: list[CloudflareRecord] = []
    rest: list[CloudflareRecord] = []
    for record in records:
        mark = read(record.comment, zone.comment)
        (mine if mark is not None and mark.made_by(zone.owner) else rest).append(record)
    return mine, rest


def _not_ours(
    fqdn: str, kind: str, foreign: list[CloudflareRecord], zone: ZonePolicy
) -> RecordConflict:
    listed = ", ".join(r.value for r in foreign)
    others = sorted({r.comment for r in foreign if r.comment and read(r.comment, zone.comment)})
    if others:
        whose = f"written by another owner ({'; '.join(map(repr, others))})"
        remedy = "Remove them through that DNSClass or deployment"
    else:
        whose = f"not managed by dns-sidecar (no {zone.comment!r} comment)"
        remedy = "Remove them"
    return RecordConflict(
        f"{fqdn} has {kind} records {whose}: {listed}. {remedy}, or set ownership: adopt for "
        "this zone.",
        details={"fqdn": fqdn, "foreign": [r.value for r in foreign]},
    )


def _held(kind: str, name: str, records: list[CloudflareRecord], zone: ZonePolicy) -> HeldSet:
    """The records of one name and type as a set: the values under the first marker found
    (canonical, once each), and the rest as foreign."""
    marks = [read(r.comment, zone.comment) for r in records]
    mark: Mark | None = next((m for m in marks if m is not None), None)
    ours = [r for r, m in zip(records, marks, strict=True) if mark is not None and m == mark]
    foreign = [r for r, m in zip(records, marks, strict=True) if mark is None or m != mark]
    counted = ours or foreign
    ttl = None if any(r.proxied for r in counted) else min(r.ttl for r in counted)
    return HeldSet(
        kind,
        name,
        tuple(dict.fromkeys(r.value for r in ours)),
        ttl,
        mark,
        tuple(dict.fromkeys(r.value for r in foreign)),
    )


def _in_the_way(fqdn: str, kind: str, records: list[CloudflareRecord]) -> RecordConflict:
    listed = ", ".join(r.describe() for r in records)
    why = "a CNAME cannot share its name with other records"
    return RecordConflict(
        f"Cannot put {kind} at {fqdn}: {listed} already there, and {why}.",
        details={"fqdn": fqdn, "existing": [r.describe() for r in records]},
    )
