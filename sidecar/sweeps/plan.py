"""One zone's findings: the pure comparison of a listing with what the DNSRecords want.

- an **orphan** is a set this deployment wrote for a DNSClass (its marker says so) that no
  DNSRecord of that class wants any more; it may be pruned only when the class is served here.
  A set marked before owners existed (no class) is an orphan when no DNSRecord of any class
  served wants it, and is only ever reported. Sets of another deployment, or of a client
  without a DNSClass, are not ours to judge and are left out.
- **drift**: a DNSRecord whose set is missing, or holds other values, or another TTL (wanted:
  ``spec.ttl``, else the DNSClass's ``spec.defaultTTL``, else the zone's), or carries the marker
  from before owners (a repair, an upsert, rewrites it with the class); repairable.
- a **conflict**: a DNSRecord whose name holds records dns-sidecar does not own (no marker,
  another DNSClass's or deployment's under ``strict``, a CNAME in the way), or two DNSRecords of
  one class wanting different sets at one name; reported, never acted on.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from sidecar.dnsrecords import WantedRecord
from sidecar.errors import SidecarError
from sidecar.providers.base import HeldSet, Ownership, ZonePolicy
from sidecar.providers.ownership import Mark, Owner
from sidecar.records import RecordKey, RecordSet
from sidecar.records.names import APEX, RecordName, is_within

SetKey = tuple[str, str]  # (type, fqdn)


class Kind(enum.StrEnum):
    ORPHAN = "orphan"
    DRIFT = "drift"
    CONFLICT = "conflict"


class Fix(enum.StrEnum):
    PRUNE = "prune"
    REPAIR = "repair"


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing a sweep found in a zone, and what could be done about it (``fix``)."""

    kind: Kind
    zone: str
    type: str
    fqdn: str
    reason: str  # a sentence a person can act on
    held: tuple[str, ...] = ()  # the values the provider holds there (ours, then foreign)
    held_ttl: int | None = None
    wanted: RecordSet | None = None  # the set the DNSRecords want (drift)
    dns_class: str | None = None  # the class whose set it is (orphan) or that wants it
    records: tuple[str, ...] = ()  # the DNSRecords concerned (namespace/name)
    fix: Fix | None = None  # prune (an orphan of a class served here), repair (drift)
    account: str = ""  # the provider account holding the zone (split horizon: one of several)

    @property
    def identity(self) -> tuple[str, str, str, str, str]:
        """What stays the same from sweep to sweep while the finding stands."""
        return (self.kind.value, self.zone, self.account, self.type, self.fqdn)

    def key(self) -> RecordKey:
        """The record set's key for a provider call (names as listed, not re-validated)."""
        if self.wanted is not None:
            return self.wanted.key
        if self.zone != "." and is_within(self.fqdn, self.zone) and self.fqdn != self.zone:
            sub = self.fqdn[: -len(self.zone) - 1]
            return RecordKey(self.type, RecordName(self.zone, sub, self.fqdn))
        return RecordKey(self.type, RecordName(self.fqdn, APEX, self.fqdn))


@dataclass(frozen=True, slots=True)
class Wants:
    """What the DNSRecords want, as one sweep sees them.

    ``here``: the DNSRecords routed to this zone, of the classes it serves; ``keys``: for every
    class served, each (type, fqdn) it wants anywhere; ``default_ttls``: each class's
    ``spec.defaultTTL`` (``unread``: the classes whose DNSClass cannot be read, so that a
    DNSRecord without ``spec.ttl`` wants a TTL nobody knows); ``namespaces``: those read, when
    not all (then no orphan is pruned: a DNSRecord in another namespace may want it).
    """

    here: Sequence[WantedRecord]
    keys: Mapping[str, frozenset[SetKey]]
    default_ttls: Mapping[str, int | None]
    namespaces: tuple[str, ...] = ()
    unread: Mapping[str, str] = field(default_factory=dict)  # class -> why its DNSClass is unread


def plan_zone(
    zone: ZonePolicy, held: Sequence[HeldSet], wants: Wants, *, deployment: str
) -> list[Finding]:
    """Every orphan, drift and conflict in ``zone``: orphans in listing order, then drift and
    conflicts in DNSRecord order."""
    index = {(h.type, h.fqdn): h for h in held}
    types_at: dict[str, set[str]] = {}
    for h in held:
        types_at.setdefault(h.fqdn, set()).add(h.type)
    findings = [o for h in held if (o := _orphan(zone, h, wants, deployment)) is not None]
    groups: dict[tuple[str, SetKey], list[WantedRecord]] = {}
    for record in wants.here:
        groups.setdefault((record.dns_class, (record.key.type, record.key.fqdn)), []).append(record)
    for (dns_class, _), records in groups.items():
        found = _compare(zone, dns_class, records, (index, types_at), wants, deployment=deployment)
        if found is not None:
            findings.append(found)
    return findings


def _orphan(zone: ZonePolicy, held: HeldSet, wants: Wants, deployment: str) -> Finding | None:
    mark = held.mark
    if mark is None or not held.values:
        return None
    key = (held.type, held.fqdn)
    draft = Finding(Kind.ORPHAN, zone.name, held.type, held.fqdn, "", held.values, held.ttl)
    if mark.legacy:
        if any(key in keys for keys in wants.keys.values()):
            return None
        return replace(
            draft,
            reason="No DNSRecord wants it, and its marker is from before owners (no DNSClass): "
            "reported, never pruned. Delete it by hand if nobody needs it.",
        )
    if not mark.of_deployment(deployment) or mark.dns_class is None:
        return None  # another deployment's, or a client's without a DNSClass: not ours to judge
    served = next((c for c in wants.keys if mark.of_class(c)), None)
    if served is None:
        return replace(
            draft,
            reason=f"Written for DNSClass {mark.dns_class}, which no dnsClass client of this "
            "routing table serves: reported, never pruned.",
            dns_class=mark.dns_class,
        )
    if key in wants.keys[served]:
        return None
    if wants.namespaces:
        return replace(
            draft,
            reason=f"No DNSRecord of DNSClass {served} read here wants it, but only the "
            f"DNSRecords of namespace(s) {', '.join(wants.namespaces)} are read "
            "(DNS_SIDECAR_DNSRECORD_NAMESPACES) and one elsewhere may: reported, never pruned.",
            dns_class=served,
        )
    return replace(
        draft,
        reason=f"No DNSRecord of DNSClass {served} wants it any more (renamed, retyped, deleted "
        "while the DNSClass was gone, or its finalizer removed by hand).",
        dns_class=served,
        fix=Fix.PRUNE,
    )


def _compare(
    zone: ZonePolicy,
    dns_class: str,
    records: list[WantedRecord],
    listing: tuple[Mapping[SetKey, HeldSet], Mapping[str, set[str]]],
    wants: Wants,
    *,
    deployment: str,
) -> Finding | None:
    index, types_at = listing
    first = records[0]
    kind, fqdn = first.key.type, first.key.fqdn
    at = index.get((kind, fqdn))
    names = tuple(f"{r.namespace}/{r.name}" for r in records)
    shown = (at.values + at.foreign) if at is not None else ()
    draft = Finding(
        Kind.CONFLICT,
        zone.name,
        kind,
        fqdn,
        "",
        shown,
        at.ttl if at is not None else None,
        dns_class=dns_class,
        records=names,
    )
    try:
        sets = {wanted_set(r, zone, wants.default_ttls.get(r.dns_class)) for r in records}
    except SidecarError as err:
        return replace(
            draft,
            kind=Kind.DRIFT,
            reason=f"{first.reference} cannot be published: {err.message}",
        )
    want = next(iter(sets))
    if any(not same_set(s, want) for s in sets):
        return replace(
            draft,
            kind=Kind.CONFLICT,
            reason=f"DNSRecords {', '.join(names)} of DNSClass {dns_class} want different "
            f"{kind} sets at {fqdn}; make them agree or delete one.",
        )
    draft = replace(draft, wanted=want)
    owner = Owner(deployment, dns_class)
    blocked = _blocked(zone, at, types_at.get(fqdn, set()), owner, (kind, fqdn))
    if blocked is not None:
        return replace(draft, kind=Kind.CONFLICT, reason=blocked)
    unknown = wants.unread.get(dns_class) if any(r.ttl is None for r in records) else None
    why = _drift(zone, at, want, ttl_known=unknown is None)
    if why is None:
        return None
    reason = f"{first.reference} (DNSClass {dns_class}): {why}"
    if unknown is not None:  # a repair would write a TTL nobody asked for
        reason += "; not repaired: the TTL it wants is unknown while its DNSClass cannot be read"
        reason += f" ({unknown.rstrip('.')})"
    fix = Fix.REPAIR if unknown is None else None
    return replace(draft, kind=Kind.DRIFT, reason=f"{reason}.", fix=fix)


def _blocked(
    zone: ZonePolicy, at: HeldSet | None, types: set[str], owner: Owner, key: SetKey
) -> str | None:
    """Why ``owner`` may not write its set at ``key`` (a conflict), or ``None``; ``types``:
    the types held at its name."""
    kind, fqdn = key
    strict = zone.ownership is Ownership.STRICT
    if strict and at is not None and at.foreign:
        return (
            f"{fqdn} holds {kind} records dns-sidecar does not own for this DNSClass "
            f"({', '.join(at.foreign)}); remove them, or set ownership: adopt for the zone."
        )
    if strict and at is not None and at.mark is not None and not at.mark.writable_by(owner):
        return (
            f"{fqdn} holds a {kind} set written {_by(at.mark)}, not for DNSClass "
            f"{owner.dns_class} of {owner.deployment}; it is theirs to change."
        )
    blocking = sorted(t for t in types if _in_the_way(kind, t))
    if blocking:
        return (
            f"{fqdn} holds {', '.join(blocking)} records, and a CNAME cannot share its name "
            "with other records."
        )
    return None


def _drift(
    zone: ZonePolicy, at: HeldSet | None, want: RecordSet, *, ttl_known: bool = True
) -> str | None:
    """How the set held differs from the one wanted, or ``None`` (the TTL compared only when
    the wanted one is known)."""
    shown = (at.values + at.foreign) if at is not None else ()
    if at is None or not shown:
        return "missing: the provider holds no such set"
    if set(shown) != set(want.values):
        return f"holds {', '.join(shown)}, wanted {', '.join(want.values)}"
    if ttl_known and at.ttl is not None and at.ttl != want.ttl:
        return f"holds TTL {at.ttl}, wanted {want.ttl}"
    if at.mark is not None and at.mark.legacy and zone.ownership is not Ownership.OFF:
        return "its marker is from before owners; a repair writes the DNSClass into it"
    return None


def wanted_set(record: WantedRecord, zone: ZonePolicy, default_ttl: int | None) -> RecordSet:
    """The set ``record`` wants in ``zone``: TTL ``spec.ttl``, else the DNSClass's
    ``default_ttl``, else the zone's; ``SidecarError`` when it cannot be published."""
    ttl = record.ttl or default_ttl or zone.ttl
    return RecordSet.build(record.key, record.full_values(), ttl)


def same_set(one: RecordSet, other: RecordSet) -> bool:
    """The same values (in any order) and TTL."""
    return (frozenset(one.values), one.ttl) == (frozenset(other.values), other.ttl)


def _in_the_way(kind: str, other: str) -> bool:
    return other != kind and "CNAME" in (kind, other)


def _by(mark: Mark) -> str:
    of_class = f", DNSClass {mark.dns_class}" if mark.dns_class else ""
    return f"by deployment {mark.deployment}{of_class}"
