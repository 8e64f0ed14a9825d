"""The interface the rest of the sidecar reads the DNSRecords through (the sweeps, ``audit``,
the upsert path's metadata, ``/status``); :class:`~sidecar.dnsrecords.index.DnsRecordIndex`
implements it, fed by the list + watch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from sidecar.dnsrecords.wanted import WantedRecord
from sidecar.records import RecordKey


class DnsRecordView(Protocol):
    """The DNSRecords of the DNSClasses served (those named by ``{dnsClass}`` clients), as the
    watch holds them now.

    A sweep reads ``generation`` before and after it looks: the number moves on every event that
    may have lost changes (a relist, a watch that failed or was dropped, the set of DNSClasses
    served changing), so a sweep that saw it move, or ran while ``synced`` was false, must not
    prune or repair.
    """

    @property
    def synced(self) -> bool:
        """The list completed and the watch is live (nothing known to be missing)."""
        ...

    @property
    def generation(self) -> int:
        """Moves on every relist, resync, disconnect or change of the DNSClasses served."""
        ...

    @property
    def namespaces(self) -> tuple[str, ...]:
        """The namespaces whose DNSRecords are read (``DNS_SIDECAR_DNSRECORD_NAMESPACES``);
        empty: all of them. Read from only some, a set nothing wants here may be wanted by a
        DNSRecord elsewhere, so a sweep must not prune."""
        ...

    def classes(self) -> frozenset[str]:
        """The DNSClasses served: those the ``{dnsClass}`` clients name."""
        ...

    def wanted(self, dns_class: str) -> Sequence[WantedRecord]:
        """Every DNSRecord of ``dns_class`` (empty for a class not served)."""
        ...

    def at(self, dns_class: str, key: RecordKey) -> Sequence[WantedRecord]:
        """The DNSRecords of ``dns_class`` at ``key`` (more than one is a conflict)."""
        ...

    def default_ttl(self, dns_class: str) -> int | None:
        """``spec.defaultTTL`` of DNSClass ``dns_class`` (from its watch); ``None`` if unset;
        a ``SidecarError`` when the DNSClass cannot be read (deleted, not synced): the TTL the
        operator would send for a DNSRecord without ``spec.ttl`` is then unknown."""
        ...

    def status(self) -> dict[str, Any]:
        """Facts for ``/status``: synced, the count per DNSClass, the loop's state, or why the
        view is off (no ``{dnsClass}`` client, no permission)."""
        ...
