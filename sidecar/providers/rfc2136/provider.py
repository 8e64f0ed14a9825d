"""The RFC 2136 provider: a record set changed by one DNS UPDATE, checked by the server itself.

An upsert reads the set at (name, type) from the primary, and when it differs sends ONE UPDATE
over TCP that deletes the set and adds the wanted values (the server applies a message whole, so
the name is never empty or half-written), together with the companion TXT record holding the
ownership marker (``companion``). The UPDATE carries prerequisites (RFC 2136 section 2.4): the
set holds exactly the values read (or does not exist), no CNAME sits at the name (or, for a
CNAME, nothing else does), and under ``strict`` ownership the companion holds exactly our
marker. A change someone else made since the read makes the server refuse the whole message,
answered 409 ``RECORD_CONFLICT``, instead of being overwritten.

Cost: a changed upsert is 1 query and 1 UPDATE; an unchanged one sends no UPDATE (1 query, and
a second for the companion when ownership is checked: equal values someone else owns are a
conflict, not "unchanged"). Writes to one (zone, name, type) are serialised under the write lock
of ``coordination`` (in-process, or shared by replicas in Redis).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dns.message
import dns.name
import dns.rcode
import dns.rdataset
import dns.rdatatype
import dns.rrset
import dns.update
from dns.rdtypes.ANY.TXT import TXT

from sidecar.coordination.base import Lease, WriteLocks
from sidecar.errors import ProviderError
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
from sidecar.providers.ownership import Mark, read
from sidecar.providers.rfc2136 import conflicts
from sidecar.providers.rfc2136.companion import companion_name
from sidecar.providers.rfc2136.listing import held_sets
from sidecar.providers.rfc2136.rdata import IN, to_rdataset, txt_strings, value_of, values_of
from sidecar.providers.rfc2136.server import PREREQUISITE_FAILED, DnsServer
from sidecar.records import RecordKey, RecordSet

CNAME = dns.rdatatype.CNAME
REMEMBERED = 4096  # companions remembered as ours (then forgotten all at once)
TXT_TYPE = dns.rdatatype.TXT


@dataclass(frozen=True, slots=True)
class _Found:
    """What the primary holds at (name, type): the set as the server has it (for the
    prerequisite, byte for byte), its canonical values and TTL, and a CNAME in the way."""

    rdataset: dns.rdataset.Rdataset | None
    values: tuple[str, ...]
    ttl: int
    cname: str | None  # a CNAME at the name, when another type was asked for


_NOTHING = _Found(None, (), 0, None)


@dataclass(frozen=True, slots=True)
class _Change:
    """One upsert's write: the wanted set in its zone, what was read, and the marker."""

    origin: dns.name.Name
    record: RecordSet
    found: _Found
    companion: str
    marker: str


class Rfc2136Provider:
    kind = "rfc2136"

    def __init__(
        self, server: DnsServer, *, locks: WriteLocks, zones: tuple[str, ...] = ()
    ) -> None:
        self.server = server
        self.zones = zones  # the zones routed to this account: health asks each for its SOA
        self._locks = locks
        # companion name -> the marker this process last wrote there or read there as its own:
        # an unchanged upsert of such a set needs no second query (bounded, forgotten at once)
        self._ours: dict[str, str] = {}

    async def upsert(self, zone: ZonePolicy, record: RecordSet) -> UpsertResult:
        key = record.key
        origin = self._origin(zone)
        async with self._locks.hold(self._lock(origin, key)) as lease:
            found = await self._read(key)
            if found.cname is not None:
                raise conflicts.in_the_way(key, [f"CNAME {found.cname}"])
            want = tuple(sorted(record.values))
            result = RecordSet(key, record.values, record.ttl)
            marker = zone.owner.marker(zone.comment)
            companion = companion_name(key.fqdn, key.type, origin.to_text(omit_final_dot=True))
            if found.rdataset is not None and found.values == want and found.ttl == record.ttl:
                if zone.ownership is Ownership.OFF or self._ours.get(companion) == marker:
                    return UpsertResult(Outcome.UNCHANGED, result)
                held = await self._marker(companion)
                mark = read(held, zone.comment)
                if mark is not None and mark.made_by(zone.owner):
                    self._remember(companion, marker)
                    return UpsertResult(Outcome.UNCHANGED, result)
                if zone.ownership is Ownership.STRICT and (
                    mark is None or not mark.writable_by(zone.owner)
                ):
                    raise conflicts.foreign(key, found.values, zone)
                # a marker from before owners, or a set taken over: the marker is rewritten
                change = _Change(origin, record, found, companion, marker)
                await self._write(change, zone, held, lease)
                return UpsertResult(Outcome.UPDATED, result)
            expected = marker if zone.ownership is Ownership.STRICT else None
            await self._write(
                _Change(origin, record, found, companion, marker), zone, expected, lease
            )
            return UpsertResult(
                Outcome.CREATED if found.rdataset is None else Outcome.UPDATED, result
            )

    async def get(self, zone: ZonePolicy, key: RecordKey) -> RecordSet | None:
        self._origin(zone)
        found = await self._read(key)
        if found.rdataset is None:
            return None
        return RecordSet(key, found.values, found.ttl)

    async def delete(self, zone: ZonePolicy, key: RecordKey) -> DeleteResult:
        if zone.ownership is not Ownership.STRICT:
            return await self._delete(zone, key, None)
        return await self._delete(zone, key, lambda mark: mark.writable_by(zone.owner))

    async def prune(self, zone: ZonePolicy, key: RecordKey) -> DeleteResult:
        """A delete of a set only this owner marked, whatever the zone's ownership mode."""
        return await self._delete(zone, key, lambda mark: mark.made_by(zone.owner))

    async def _delete(
        self, zone: ZonePolicy, key: RecordKey, ours: Callable[[Mark], bool] | None
    ) -> DeleteResult:
        """Remove the set and its companion in one UPDATE; with ``ours``, only when the
        companion's marker passes it (checked by the server too, as a prerequisite)."""
        origin = self._origin(zone)
        async with self._locks.hold(self._lock(origin, key)) as lease:
            found = await self._read(key)
            if found.rdataset is None:
                return DeleteResult(removed=0)
            companion = companion_name(key.fqdn, key.type, origin.to_text(omit_final_dot=True))
            held: str | None = None
            if ours is not None:
                held = await self._marker(companion)
                mark = read(held, zone.comment)
                if mark is None or not ours(mark):
                    return DeleteResult(
                        removed=0, left=tuple(f"{key.type} {v}" for v in found.values)
                    )
            self._ours.pop(companion, None)
            message = self.server.new_update(origin)
            name = dns.name.from_text(key.fqdn)
            message.present(name, *found.rdataset)
            if held is not None:
                message.present(dns.name.from_text(companion), _marker_rdata(held))
            message.delete(name, found.rdataset.rdtype)
            message.delete(dns.name.from_text(companion), TXT_TYPE)
            lease.ensure(self.server.timeout)
            rcode = await self.server.update(message)
            if rcode in PREREQUISITE_FAILED:
                raise conflicts.changed(key, rcode, "delete")
            return DeleteResult(removed=len(found.values))

    async def held(self, zone: ZonePolicy) -> list[HeldSet]:
        """The zone by one AXFR (with the same TSIG key), each set with the marker its
        companion holds; the zone's SOA and apex NS (the server's own), companions, DNSSEC data
        and types the sidecar does not write are left out. A refused transfer is a 502 naming
        ``allow-transfer``: the sweep reports it and changes nothing in this zone."""
        origin = self._origin(zone)
        return held_sets(await self.server.transfer(origin), zone)

    async def health(self) -> Health:
        if not self.zones:
            return Health(healthy=True, message=f"DNS server {self.server.server}; no zone routed")
        serials = []
        for zone in self.zones:
            try:
                reply = await self.server.query(dns.name.from_text(zone), dns.rdatatype.SOA)
            except Exception as err:  # noqa: BLE001 - any failure is "unhealthy", with its reason
                return Health(healthy=False, message=getattr(err, "message", str(err)))
            soa = _answer(reply, dns.name.from_text(zone), dns.rdatatype.SOA)
            if soa is None or not reply.flags & dns.flags.AA:
                return Health(
                    healthy=False,
                    message=f"DNS server {self.server.server} is not authoritative for {zone} "
                    "(no SOA in its answer): check the zone entry and the server's zones.",
                )
            serials.append(f"{zone} serial {soa[0].serial}")
        return Health(
            healthy=True, message=f"DNS server {self.server.server} answers: {', '.join(serials)}"
        )

    def status(self) -> dict[str, Any]:
        return {"server": self.server.server, "zones": list(self.zones)}

    async def aclose(self) -> None:
        return None  # a connection per message: nothing stays open

    # --- the steps ----------------------------------------------------------------------------

    def _origin(self, zone: ZonePolicy) -> dns.name.Name:
        if zone.name == ROOT:
            raise ProviderError(
                f"Account {self.server.account!r} (rfc2136) is routed the zone '.': an UPDATE "
                "names its zone, so give the DNS zone's own name in the routing table's zones.",
                details={"account": self.server.account},
            )
        return dns.name.from_text(zone.name)

    def _lock(self, origin: dns.name.Name, key: RecordKey) -> tuple[str, str, str]:
        return (f"rfc2136/{self.server.server}/{origin}", key.fqdn, key.type)

    async def _read(self, key: RecordKey) -> _Found:
        name = dns.name.from_text(key.fqdn)
        rdtype = dns.rdatatype.from_text(key.type)
        reply = await self.server.query(name, rdtype)
        rrset = _answer(reply, name, rdtype)
        cname = _answer(reply, name, CNAME) if rdtype != CNAME else None
        if cname is not None:
            return _Found(None, (), 0, value_of("CNAME", cname[0]).rstrip("."))
        if rrset is None:
            return _NOTHING
        return _Found(rrset, values_of(key.type, rrset), rrset.ttl, None)

    def _remember(self, companion: str, marker: str) -> None:
        if len(self._ours) >= REMEMBERED:
            self._ours.clear()
        self._ours[companion] = marker

    async def _marker(self, companion: str) -> str | None:
        """The companion's text, or ``None`` when there is none (or it is not one string)."""
        name = dns.name.from_text(companion)
        rrset = _answer(await self.server.query(name, TXT_TYPE), name, TXT_TYPE)
        if rrset is None or len(rrset) != 1:
            return None
        return value_of("TXT", rrset[0])

    async def _write(
        self, change: _Change, zone: ZonePolicy, expected: str | None, lease: Lease
    ) -> None:
        """One UPDATE: the set replaced and the marker written, under prerequisites.

        ``expected``: the companion's text that the server must hold for a set that exists
        (``None``: no check of the companion). A strict write refused because the companion
        holds a marker from before owners is sent again once, expecting that marker.
        """
        key, found, companion = change.record.key, change.found, change.companion
        self._ours.pop(companion, None)  # until the server has taken the write
        for attempt in (1, 2):
            message = self._message(change, expected)
            lease.ensure(self.server.timeout)
            rcode = await self.server.update(message)
            if rcode not in PREREQUISITE_FAILED:
                self._remember(companion, change.marker)
                return
            if zone.ownership is not Ownership.STRICT or found.rdataset is None or attempt == 2:
                raise conflicts.changed(key, rcode, "upsert")
            held = await self._marker(companion)
            mark = read(held, zone.comment)
            if mark is None or not mark.writable_by(zone.owner):
                raise conflicts.foreign(key, found.values, zone)
            if held == expected:
                raise conflicts.changed(key, rcode, "upsert")
            expected = held  # ours, written before owners existed: rewritten now

    def _message(self, change: _Change, expected: str | None) -> dns.update.UpdateMessage:
        record, found = change.record, change.found
        key = record.key
        name = dns.name.from_text(key.fqdn)
        rdtype = dns.rdatatype.from_text(key.type)
        marker_name = dns.name.from_text(change.companion)
        message = self.server.new_update(change.origin)
        if found.rdataset is not None:
            message.present(
                name, *found.rdataset
            )  # exactly the values read (TTL 0 in a prerequisite)
            if expected is not None:
                message.present(marker_name, _marker_rdata(expected))
        elif rdtype == CNAME:
            message.absent(name)  # nothing at all at the name: a CNAME stands alone
        else:
            message.absent(name, rdtype)
        if rdtype != CNAME:
            message.absent(name, CNAME)
        message.replace(name, to_rdataset(record))
        message.replace(marker_name, record.ttl, _marker_rdata(change.marker))
        return message


def _marker_rdata(text: str) -> TXT:
    return TXT(IN, TXT_TYPE, txt_strings(text))


def _answer(
    reply: dns.message.Message, name: dns.name.Name, rdtype: dns.rdatatype.RdataType
) -> dns.rrset.RRset | None:
    # NS below the apex is a delegation: the primary answers with a referral (authority)
    sections = (reply.answer, reply.authority) if rdtype == dns.rdatatype.NS else (reply.answer,)
    for section in sections:
        for rrset in section:
            if rrset.name == name and rrset.rdtype == rdtype and rrset.rdclass == IN:
                return rrset
    return None
