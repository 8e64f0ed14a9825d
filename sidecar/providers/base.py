"""The provider interface: what routing hands a request to, whatever is behind it."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sidecar.providers.ownership import Mark, Owner
from sidecar.records import RecordKey, RecordSet


class Ownership(enum.StrEnum):
    """How a provider treats records it did not create (SPEC section 6)."""

    STRICT = "strict"  # never change or remove a record without our marker
    ADOPT = "adopt"  # take foreign records at the name over
    OFF = "off"  # no marker checks


class Orphans(enum.StrEnum):
    """What a sweep does with an orphan: a set we wrote that no DNSRecord wants (SPEC 9)."""

    REPORT = "report"
    PRUNE = "prune"  # delete it once it has stayed an orphan for the grace period


class Drift(enum.StrEnum):
    """What a sweep does with drift: a DNSRecord whose set is missing or differs (SPEC 9)."""

    REPORT = "report"
    REPAIR = "repair"  # apply the wanted set as an upsert would


ANYONE = Owner()  # the owner of a route not yet given one: this deployment, no DNSClass
ROOT = "."  # a zone named "." covers every name (the embedded default uses it)
OWNERSHIP_MARKER = "managed by dns-sidecar"  # the default comment on records the sidecar owns


@dataclass(frozen=True, slots=True)
class ZonePolicy:
    """A routed zone's settings, as the provider needs them for one request.

    The defaults here are the routing table's ``defaults`` (``config.schema.Defaults`` takes
    them from this class), so they are declared once.
    """

    name: str
    ttl: int = 300
    ttl_source: str = "defaults.ttl"  # the routing table key ``ttl`` came from (for messages)
    proxied: bool = False
    ownership: Ownership = Ownership.STRICT
    comment: str = OWNERSHIP_MARKER
    zone_id: str | None = None
    owner: Owner = ANYONE  # who writes through this route: the marker is ``owner.marker(comment)``
    orphans: Orphans = Orphans.REPORT  # for sweeps, not the provider
    drift: Drift = Drift.REPORT  # for sweeps, not the provider


class Outcome(enum.StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


@dataclass(frozen=True, slots=True)
class UpsertResult:
    outcome: Outcome
    record: RecordSet


@dataclass(frozen=True, slots=True)
class DeleteResult:
    """What a delete did: how many values it removed and which foreign ones it left alone."""

    removed: int
    left: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class HeldSet:
    """One record set as a zone listing found it (what a sweep compares with the DNSRecords),
    keyed by type and FQDN (a listing may hold names no request could spell).

    ``values`` are the canonical values that carry a dns-sidecar marker, all with the same one,
    read into ``mark`` (``None`` when no value carries a marker: then ``values`` is empty).
    ``foreign`` are the values at the same name and type that carry no marker, or a marker
    other than ``mark`` (another tool's records, a person's, or another writer's). ``ttl`` is
    the TTL the set holds, ``None`` when the provider decides it (Cloudflare's proxied records),
    so it is not compared.
    """

    type: str  # upper case
    fqdn: str  # lower case, no trailing dot
    values: tuple[str, ...]
    ttl: int | None
    mark: Mark | None
    foreign: tuple[str, ...] = ()

    @property
    def ours(self) -> bool:
        """Some value carries a dns-sidecar marker (of any owner, or the legacy one)."""
        return self.mark is not None and bool(self.values)


@dataclass(frozen=True, slots=True)
class Health:
    healthy: bool
    message: str


class Provider(Protocol):
    """One provider account. Implementations: ``MemoryProvider``, the Cloudflare provider, the
    RFC 2136 provider (``providers.rfc2136``)."""

    @property
    def kind(self) -> str:
        """Short provider name for logs and ``/status``: ``memory``, ``cloudflare``, ``rfc2136``."""
        ...

    async def upsert(self, zone: ZonePolicy, record: RecordSet) -> UpsertResult:
        """Make the name hold exactly ``record``'s values; idempotent."""
        ...

    async def get(self, zone: ZonePolicy, key: RecordKey) -> RecordSet | None:
        """The record set at ``key``, or ``None`` when nothing of that type is there."""
        ...

    async def delete(self, zone: ZonePolicy, key: RecordKey) -> DeleteResult:
        """Remove the record set at ``key``; removing nothing is not an error."""
        ...

    async def held(self, zone: ZonePolicy) -> Sequence[HeldSet]:
        """Every record set in the zone, read in ONE listing (all its pages), each with its
        marker read against ``zone.comment`` (see :class:`HeldSet`). Sets of other zones that a
        zone named ``.`` or a parent zone's listing would include are left out only where the
        provider can tell; the caller routes each name again. Raises a provider error
        (``ProviderUnavailable``, ``ProviderError``, ``RateLimited``) when the listing fails:
        a sweep must then change nothing."""
        ...

    async def health(self) -> Health:
        """Whether the account can serve requests now (callers cache this)."""
        ...

    def status(self) -> dict[str, Any]:
        """Facts for ``/status`` (the request budget, for instance); no I/O."""
        ...

    async def aclose(self) -> None:
        """Release connections and files."""
        ...
