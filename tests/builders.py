"""Building what tests serve from, in one place: a :class:`Runtime` around given providers."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sidecar.auth.clients import Client
from sidecar.auth.replay import ReplayCache
from sidecar.clock import Clock, SystemClock
from sidecar.config.runtime import Runtime
from sidecar.coordination.local import LocalCoordination
from sidecar.providers.base import (
    ROOT,
    DeleteResult,
    Health,
    Provider,
    UpsertResult,
    ZonePolicy,
)
from sidecar.records import RecordKey, RecordSet
from sidecar.routing.table import Account, Route, RoutingTable


def local(clock: Clock | None = None) -> LocalCoordination:
    """The in-process shared state (one replica, no Redis), as the app builds it without
    ``DNS_SIDECAR_REDIS_URL``."""
    return LocalCoordination(ReplayCache(1000), clock or SystemClock())


def make_runtime(
    accounts: Mapping[str, Provider] | Sequence[Provider],
    zones: Iterable[tuple[str | ZonePolicy, str]] = (),
    *,
    clients: Iterable[Client] = (),
) -> Runtime:
    """A routing table for tests, as a reload would swap it in.

    ``accounts`` names each provider (a sequence is named ``a0``, ``a1``, ...); ``zones`` routes
    each zone (a name, or a whole ``ZonePolicy``) to an account by its name. Without ``zones``,
    the zone ``.`` (every name) goes to the first account.
    """
    named = (
        accounts if isinstance(accounts, Mapping) else {f"a{i}": p for i, p in enumerate(accounts)}
    )
    built = {name: Account(name, provider) for name, provider in named.items()}
    routes = list(zones) or [(ROOT, next(iter(built)))]
    table = RoutingTable(
        Route(zone if isinstance(zone, ZonePolicy) else ZonePolicy(name=zone), built[account])
        for zone, account in routes
    )
    return Runtime(source="test", table=table, clients=tuple(clients), accounts=built)


class FailingProvider:
    """A provider double whose every call raises the error it was given; its health check
    reports the error's text."""

    kind = "failing"

    def __init__(self, error: Exception) -> None:
        self.error = error

    async def upsert(self, zone: ZonePolicy, record: RecordSet) -> UpsertResult:
        raise self.error

    async def get(self, zone: ZonePolicy, key: RecordKey) -> RecordSet | None:
        raise self.error

    async def delete(self, zone: ZonePolicy, key: RecordKey) -> DeleteResult:
        raise self.error

    async def prune(self, zone: ZonePolicy, key: RecordKey) -> DeleteResult:
        raise self.error

    async def health(self) -> Health:
        return Health(healthy=False, message=str(self.error))

    def status(self) -> dict[str, Any]:
        return {}

    async def aclose(self) -> None:
        return None


# --- the operator's DNSRecords, and the upsert its client builds from one ---------------------

_HOST = re.compile(r"[A-Za-z0-9-]{1,63}(\.[A-Za-z0-9-]{1,63})*")


def dns_record_spec(
    kind: str,
    domain: str,
    subdomain: str,
    values: list[str],
    dns_class: str,
    *,
    ttl: int | None = None,
    metadata: dict[str, int] | None = None,
    description: str | None = None,
) -> dict[str, Any]:
    """A DNSRecord's spec that the operator's admission webhook admits (its rules, restated:
    MX needs ``metadata.priority``, SRV all of priority, weight and port, and the values of
    both are bare domain names); anything else fails here, as it would at ``kubectl apply``."""
    if kind in ("MX", "SRV", "NS", "CNAME"):
        assert all(_HOST.fullmatch(v) and len(v) <= 253 for v in values), values
    needed = {"MX": ("priority",), "SRV": ("priority", "weight", "port")}.get(kind, ())
    assert all(part in (metadata or {}) for part in needed), (kind, metadata)
    spec: dict[str, Any] = {
        "type": kind,
        "domain": domain,
        "subdomain": subdomain,
        "dnsClassRef": {"name": dns_class},
        "values": values,
    }
    if ttl is not None:
        spec["ttl"] = ttl
    if metadata is not None:
        spec["metadata"] = metadata
    if description is not None:
        spec["description"] = description
    return spec


def operator_upsert(spec: dict[str, Any], dns_class_spec: dict[str, Any]) -> dict[str, Any]:
    """The body the operator's client sends for a DNSRecord: type, domain, subdomain, values,
    and ttl (the DNSRecord's, else the DNSClass's defaultTTL, else left out); never the
    metadata, the description or the class."""
    record: dict[str, Any] = {key: spec[key] for key in ("type", "domain", "subdomain", "values")}
    ttl = spec.get("ttl", dns_class_spec.get("defaultTTL"))
    if ttl is not None:
        record["ttl"] = ttl
    return {"record": record, "operation": "upsert"}
