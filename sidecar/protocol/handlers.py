"""The four endpoints of the webhook protocol (SPEC section 2).

Handlers parse at the edge, route, call the provider and answer; errors are raised and turned
into responses by ``request_path`` (its ``map_error`` step) alone.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sidecar.auth.signing import HEADER_SIGNATURE
from sidecar.clock import Clock
from sidecar.dnsrecords.metadata import BareValues
from sidecar.dnsrecords.wanted import WITH_METADATA
from sidecar.errors import DomainNotAllowed, InvalidRecord, RecordNotFound
from sidecar.health import HealthCache, accounts_for, verdict
from sidecar.observability.metrics import Metrics
from sidecar.protocol import wire
from sidecar.protocol.call import Call
from sidecar.protocol.endpoints import Endpoints
from sidecar.protocol.json import JsonAnswer, json_response, record_response
from sidecar.providers.base import Outcome, ZonePolicy
from sidecar.records import RecordKey, RecordSet
from sidecar.routing.table import Route

UPSERT_MESSAGES = {
    Outcome.CREATED: "Record created successfully",
    Outcome.UPDATED: "Record updated successfully",
    Outcome.UNCHANGED: "Record unchanged (already up to date)",
}


class ProtocolApi:
    def __init__(
        self,
        health: HealthCache,
        metrics: Metrics,
        clock: Clock,
        problem: Callable[[], str | None] = lambda: None,  # shared state unavailable: why
        bare_values: BareValues | None = None,  # MX/SRV numbers from DNSRecords
    ) -> None:
        self.problem = problem
        self.bare_values = bare_values
        self.health_cache = health
        self.metrics = metrics
        self.clock = clock

    def endpoints(self) -> Endpoints:
        endpoints = Endpoints()
        records = "/records/{type}/{domain}/{subdomain}"
        endpoints.add("GET", "/health", self.health)
        endpoints.add("POST", "/records", self.upsert)
        endpoints.add("GET", records, self.get, may_be_empty={"subdomain"})
        endpoints.add("DELETE", records, self.delete, may_be_empty={"subdomain"})
        return endpoints

    async def health(self, call: Call) -> JsonAnswer:
        """Judged for the caller: the accounts its routes (within its zones) lead to; unsigned,
        every account."""
        runtime, client = call.runtime, call.client
        if client is not None and HEADER_SIGNATURE in call.request.headers:
            accounts = accounts_for(runtime.table, client.zones, client.name)
        else:
            accounts = dict(runtime.accounts)
        results = await self.health_cache.check(accounts)
        stamp = datetime.fromtimestamp(self.clock.time(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        unhealthy = verdict(results, runtime.table)
        problem = self.problem()  # the shared state (Redis), needed by every account
        if unhealthy is not None or problem is not None:
            message = "; ".join(filter(None, [unhealthy, problem and f"Unhealthy: {problem}"]))
            body = {"status": "unhealthy", "message": message, "timestamp": stamp}
            return json_response(body, status=503)
        body = {"status": "healthy", "message": "DNS server is operational", "timestamp": stamp}
        return json_response(body)

    async def upsert(self, call: Call) -> JsonAnswer:
        parsed = wire.parse_upsert(call.body)
        route = self._route(call, parsed.key)
        ttl = parsed.ttl if parsed.ttl is not None else route.zone.ttl
        values = parsed.values
        if parsed.key.type in WITH_METADATA and self.bare_values is not None:
            client = call.client
            values = await self.bare_values.complete(
                client.dns_class if client else None,
                client.name if client else None,
                parsed.key,
                values,
            )
        record = RecordSet.build(parsed.key, values, ttl)
        try:
            result = await route.account.provider.upsert(route.zone, record)
        except InvalidRecord as err:
            if err.details.get("field") != "ttl":
                raise
            raise _ttl_origin(err, route.zone, from_request=parsed.ttl is not None) from err
        self.metrics.count_change(route.account.name, result.outcome.value)
        return record_response(result.record, UPSERT_MESSAGES[result.outcome])

    async def get(self, call: Call) -> JsonAnswer:
        key = _path_key(call)
        route = self._route(call, key)
        found = await route.account.provider.get(route.zone, key)
        if found is None:
            raise RecordNotFound(
                f"No {key.type} record exists at {key.fqdn}.",
                details={"type": key.type, "fqdn": key.fqdn},
            )
        return record_response(found)

    async def delete(self, call: Call) -> JsonAnswer:
        key = _path_key(call)
        route = self._route(call, key)
        result = await route.account.provider.delete(route.zone, key)
        body: dict[str, Any] = {"success": True}
        if result.removed:
            body["message"] = "Record deleted successfully"
            self.metrics.count_change(route.account.name, "deleted")
        elif result.left:
            body["message"] = "No record managed by dns-sidecar was there to delete"
        else:
            body["message"] = "Record does not exist (already deleted)"
        if result.left:
            body["message"] += (
                f"; left {len(result.left)} record(s) not managed by dns-sidecar in place: "
                + ", ".join(result.left)
            )
            body["left"] = list(result.left)
        return json_response(body)

    def _route(self, call: Call, key: RecordKey) -> Route:
        facts = call.facts
        facts.fqdn = key.fqdn
        client = call.client
        route = call.runtime.table.resolve(key.fqdn, client.name if client is not None else None)
        if client is not None and not client.may_change(key.fqdn):
            raise DomainNotAllowed(
                f"Client {client.name!r} may not change {key.fqdn}; its zones are "
                f"{', '.join(client.zones or ())}.",
                details={"fqdn": key.fqdn, "client": client.name},
            )
        facts.account = route.account.name
        return route


def _path_key(call: Call) -> RecordKey:
    params = call.params
    return RecordKey.parse(params["type"], params["domain"], params["subdomain"])


def _ttl_origin(err: InvalidRecord, zone: ZonePolicy, *, from_request: bool) -> InvalidRecord:
    """The provider's TTL refusal, saying where the TTL came from and so what to fix."""
    if from_request:
        origin, fix = "the request's ttl", "send a TTL the provider takes"
        source = "request"
    else:
        origin = f"the default of zone {zone.name!r}, from the routing table's {zone.ttl_source}"
        fix = f"fix {zone.ttl_source} (dns-sidecar check finds it), or send a ttl"
        source = zone.ttl_source
    return InvalidRecord(
        f"{err.message} This TTL is {origin}: {fix}.", details={**err.details, "source": source}
    )
