"""Starting, changing and stopping the DNSRecord watch as the routing table's ``{dnsClass}``
clients come and go (at start and after each reload), on the Kubernetes client that the
credential store already runs for their DNSClasses."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from sidecar.credentials.objects import DNSRecord
from sidecar.credentials.store import CredentialStore
from sidecar.dnsrecords.index import DnsRecordIndex

if TYPE_CHECKING:
    from sidecar.credentials.kubernetes import KubernetesObjects

log = logging.getLogger(__name__)

NO_CLIENT = (
    "no client of the routing table names a dnsClass, so no DNSRecord is read (bare MX hosts "
    "and SRV targets are refused; sweeps do not run)"
)


class DnsRecordFollower:
    """Keeps its ``index`` fed for the DNSClasses served, from the store's Kubernetes client."""

    def __init__(
        self,
        store: CredentialStore,
        namespaces: Sequence[str] = (),
        *,
        read_timeout: float = 10.0,
    ) -> None:
        self._store = store
        self.index = DnsRecordIndex(self.default_ttl)
        self._namespaces = tuple(namespaces)
        self._read_timeout = read_timeout
        self._watching = False

    def follow(self, classes: Iterable[str]) -> None:
        """Serve ``classes`` from now on: start the watch, list again when they changed, stop
        it when there are none."""
        wanted = frozenset(classes)
        objects = self._kubernetes()
        if not wanted:
            self._stop(objects)
            if self.index.off_reason != NO_CLIENT:
                self.index.off(NO_CLIENT)
            return
        if objects is None or objects.unavailable is not None:
            why = objects.unavailable if objects is not None else "not connected"
            self._stop(objects)
            self.index.off(f"no Kubernetes API to read DNSRecords from: {why}", wanted)
            return
        if self._watching and wanted == self.index.classes():
            return
        self.index.serve(wanted, self._namespaces)
        self._watching = objects.watch_dns_records(self._namespaces, self.index)
        log.info(
            "reading the DNSRecords of DNSClass(es) %s from %s",
            ", ".join(sorted(wanted)),
            ", ".join(self._namespaces) or "all namespaces",
        )

    def _stop(self, objects: KubernetesObjects | None) -> None:
        if self._watching and objects is not None:
            objects.stop_dns_records()
        self._watching = False

    def default_ttl(self, dns_class: str) -> int | None:
        """``spec.defaultTTL`` of the DNSClass, from its watch; ``None`` if unset;
        ``CredentialUnavailable`` when the DNSClass cannot be read (then nobody knows)."""
        return self._store.dns_class(dns_class).default_ttl

    async def fetch(self, namespace: str, name: str) -> DNSRecord | None:
        """DNSRecord ``namespace/name`` read from the API server now."""
        objects = self._kubernetes()
        if objects is None:
            return None
        return await objects.dns_record(namespace, name, self._read_timeout)

    def _kubernetes(self) -> KubernetesObjects | None:
        return self._store.kubernetes
