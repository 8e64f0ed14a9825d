"""The numbers a bare MX host or SRV target lacks, from its DNSRecord as that object is now.

The operator sends an MX DNSRecord's values as bare hosts and leaves ``spec.metadata`` out
(SPEC section 9). The watch's index says which DNSRecord(s) of the calling client's DNSClass sit
at the record's (type, domain, subdomain); each is then read by name from the API server (a GET,
served from etcd), because the watch may still hold the copy from before an edit: the operator
upserts as soon as its own informer sees the edit, and an answer "unchanged" from the older copy
would leave the old priority published for up to ten hours. One GET per bare upsert is the price
(about a millisecond on loopback; every other type pays nothing). A DNSRecord the watch has not
delivered yet is waited for, up to ``wait`` seconds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

import aiohttp

from sidecar.credentials.objects import DNSRecord
from sidecar.credentials.watch import ApiError
from sidecar.dnsrecords.index import DnsRecordIndex
from sidecar.dnsrecords.parse import Unreadable, parse
from sidecar.dnsrecords.wanted import WantedRecord, complete, describe_all, is_bare
from sidecar.errors import InvalidRecord, ProviderUnavailable, RecordConflict
from sidecar.records import RecordKey

log = logging.getLogger(__name__)

Fetch = Callable[[str, str], Awaitable[DNSRecord | None]]
_FULL = {"MX": "'priority host' values (like '10 mail.example.com')"}
_FULL["SRV"] = "'priority weight port target' values (like '10 5 5060 sip.example.com')"
_RBAC = "get, list and watch on dnsrecords (a ClusterRole)"


class BareValues:
    """Completes bare MX hosts and SRV targets for the DNSClass of the calling client."""

    def __init__(self, index: DnsRecordIndex, fetch: Fetch, *, wait: float = 3.0) -> None:
        self.index = index
        self.fetch = fetch
        self.wait = wait
        self.waiting = 0  # requests waiting now for the watch to deliver their DNSRecord

    async def complete(
        self, dns_class: str | None, client: str | None, key: RecordKey, values: Sequence[str]
    ) -> list[str]:
        """``values`` with their numbers, from the DNSRecord of ``dns_class`` at ``key``."""
        bare = [value.strip() for value in values if is_bare(key.type, value)]
        if not bare:
            return list(values)
        if dns_class is None:
            who = f"client {client!r} names no dnsClass" if client else "no client is configured"
            raise self._refused(
                key,
                bare,
                f"{who}, so there is no DNSRecord to take them from",
                f"give the client dnsClass: NAME in the routing table (the sidecar then reads "
                f"that DNSClass's DNSRecords, with {_RBAC})",
            )
        if self.index.off_reason is not None:
            raise self._refused(
                key,
                bare,
                f"DNSRecords are not read: {self.index.off_reason}",
                f"let the sidecar read them ({_RBAC}, and a client with dnsClass)",
            )
        found = await self._find(dns_class, key, bare)
        distinct = {record.metadata for record in found}
        if len(distinct) > 1:
            raise RecordConflict(
                f"{describe_all(found)} of DNSClass {dns_class} all want {key.type} {key.fqdn} "
                "with different metadata ("
                + "; ".join(f"{r.reference}: {r.metadata.describe(key.type)}" for r in found)
                + "): keep one DNSRecord per name and type, or give them the same metadata.",
                details={
                    "fqdn": key.fqdn,
                    "type": key.type,
                    "dnsRecords": [f"{r.namespace}/{r.name}" for r in found],
                },
            )
        return complete(key.type, values, found[0].metadata)

    async def _find(self, dns_class: str, key: RecordKey, bare: list[str]) -> list[WantedRecord]:
        """The DNSRecords of ``dns_class`` at ``key`` as they are now, waiting for the watch to
        deliver one (at most ``wait`` seconds)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait
        while True:
            found = await self._current(dns_class, key, self.index.at(dns_class, key))
            if found:
                return found
            left = deadline - loop.time()
            failing = self.index.never_listed
            if left <= 0 or failing:
                raise self._refused(
                    key,
                    bare,
                    f"no DNSRecord of DNSClass {dns_class} with type {key.type}, domain "
                    f"{key.name.domain} and subdomain {key.name.subdomain} was found"
                    + (f" ({failing})" if failing else f" within {self.wait:g} s"),
                    f"check that the DNSRecord exists, and that the sidecar may read it ({_RBAC})",
                )
            self.waiting += 1
            try:
                await self.index.changed(left)
            finally:
                self.waiting -= 1

    async def _current(
        self, dns_class: str, key: RecordKey, seen: Sequence[WantedRecord]
    ) -> list[WantedRecord]:
        """Each DNSRecord in ``seen`` read again, kept if it still sits at ``key``."""
        read = await asyncio.gather(*(self._read(record) for record in seen))
        return [
            now
            for now in read
            if isinstance(now, WantedRecord) and now.dns_class == dns_class and now.key == key
        ]

    async def _read(self, record: WantedRecord) -> WantedRecord | Unreadable | None:
        """``record``'s DNSRecord read again by name (``None``: it is gone)."""
        try:
            raw = await self.fetch(record.namespace, record.name)
        except ApiError as err:
            if err.status == 403:
                raise InvalidRecord(
                    f"The API server forbids reading {record.reference} ({err.reason}): the "
                    f"sidecar needs {_RBAC} to take an MX or SRV record's numbers from it.",
                    details={"dnsRecord": f"{record.namespace}/{record.name}"},
                ) from err
            raise self._unavailable(record, f"{err.status}: {err.reason}") from err
        except (aiohttp.ClientError, TimeoutError) as err:
            raise self._unavailable(record, str(err) or type(err).__name__) from err
        return None if raw is None else parse(raw)

    def _unavailable(self, record: WantedRecord, why: str) -> ProviderUnavailable:
        return ProviderUnavailable(
            f"Cannot read {record.reference} from the Kubernetes API ({why}); the operator "
            "retries.",
            details={"dnsRecord": f"{record.namespace}/{record.name}"},
        )

    def _refused(self, key: RecordKey, bare: list[str], why: str, remedy: str) -> InvalidRecord:
        return InvalidRecord(
            f"The {key.type} value(s) {', '.join(repr(v) for v in bare)} at {key.fqdn} carry no "
            f"{'priority, weight and port' if key.type == 'SRV' else 'priority'}, and {why}. "
            f"Either {remedy}, or send {_FULL[key.type]}.",
            details={"field": "values", "type": key.type, "fqdn": key.fqdn},
        )
