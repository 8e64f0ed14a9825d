"""The provider interface: what routing hands a request to, whatever is behind it."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Protocol

from sidecar.records import RecordKey, RecordSet


class Ownership(enum.StrEnum):
    """How a provider treats records it did not create (SPEC section 6)."""

    STRICT = "strict"  # never change or remove a record without our marker
    ADOPT = "adopt"  # take foreign records at the name over
    OFF = "off"  # no marker checks


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
class Health:
    healthy: bool
    message: str


class Provider(Protocol):
    """One provider account. Implementations: ``MemoryProvider``, the Cloudflare provider."""

    @property
    def kind(self) -> str:
        """Short provider name for logs and ``/status`` (``memory``, ``cloudflare``)."""
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

    async def health(self) -> Health:
        """Whether the account can serve requests now (callers cache this)."""
        ...

    def status(self) -> dict[str, Any]:
        """Facts for ``/status`` (the request budget, for instance); no I/O."""
        ...

    async def aclose(self) -> None:
        """Release connections and files."""
        ...
