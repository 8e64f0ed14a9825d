"""Account health, cached per account so that probes do not cost a provider API call each.

``/health`` is judged for its caller (SPEC section 3): ``accounts_for`` picks the accounts that a
client's routes lead to, within its zones, and ``verdict`` names the failing ones with the zones
they affect.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

from sidecar.clock import Clock
from sidecar.errors import DomainNotAllowed
from sidecar.providers.base import ROOT, Health
from sidecar.records.names import is_within
from sidecar.routing.table import Account, RoutingTable

HEALTH_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class _Checked:
    account: Account  # the object checked: a reload that replaces it means a new check
    at: float
    health: Health


class HealthCache:
    """Asks each account at most once per ``ttl`` seconds; concurrent askers share one check,
    and a caller waits only for the accounts it asked about."""

    def __init__(self, clock: Clock, ttl: float) -> None:
        self._clock = clock
        self._ttl = ttl
        self._checked: dict[str, _Checked] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def last(self, accounts: Mapping[str, Account]) -> dict[str, Health]:
        """The latest result for each of ``accounts`` (the table in force), without checking
        (for ``/status``). Verdicts on accounts they no longer have, removed or replaced by a
        reload, are dropped: they would describe an object nobody uses."""
        for name in [n for n, c in self._checked.items() if accounts.get(n) is not c.account]:
            del self._checked[name]
        return {name: checked.health for name, checked in self._checked.items()}

    async def check(self, accounts: Mapping[str, Account]) -> dict[str, Health]:
        names = list(accounts)
        results = await asyncio.gather(*(self._one(name, accounts[name]) for name in names))
        return dict(zip(names, results, strict=True))

    async def _one(self, name: str, account: Account) -> Health:
        async with self._locks.setdefault(name, asyncio.Lock()):
            checked = self._checked.get(name)
            now = self._clock.monotonic()
            if checked is not None and checked.account is account and now - checked.at < self._ttl:
                return checked.health
            health = await _probe(account)
            self._checked[name] = _Checked(account, self._clock.monotonic(), health)
            return health


def accounts_for(
    table: RoutingTable, zones: tuple[str, ...] | None, client: str | None
) -> dict[str, Account]:
    """The accounts serving ``client`` names in ``zones`` (``None``: every zone it is routed)."""
    routes = table.routes_for(client)
    if zones is None:
        return {route.account.name: route.account for route in routes}
    found: dict[str, Account] = {}
    for zone in zones:
        for route in routes:
            below = route.zone.name != ROOT and is_within(route.zone.name, zone)
            if below:
                found[route.account.name] = route.account
        try:
            route = table.resolve(zone, client)  # the zone itself (and what is not below it)
        except DomainNotAllowed:
            continue  # no zone covers it: nothing to judge
        found[route.account.name] = route.account
    return found


def affected(table: RoutingTable) -> dict[str, str]:
    """What each account's failure affects, as people read it: ``zones a, b`` or ``every zone``."""
    served: dict[str, list[str]] = {}
    for route in table:
        served.setdefault(route.account.name, []).append(route.zone.name)
    return {
        account: "every zone" if ROOT in zones else f"zones {', '.join(sorted(zones))}"
        for account, zones in served.items()
    }


def verdict(results: Mapping[str, Health], table: RoutingTable) -> str | None:
    """``None`` when all is well, else a message naming each failing account, the zones it
    affects, and why."""
    failing = sorted((name, h.message) for name, h in results.items() if not h.healthy)
    if not failing:
        return None
    served = affected(table)
    listed = "; ".join(
        f"{name} ({served.get(name, 'no zone routes to it')}): {why}" for name, why in failing
    )
    return f"Unhealthy accounts: {listed}"


async def _probe(account: Account) -> Health:
    try:
        return await asyncio.wait_for(account.provider.health(), HEALTH_TIMEOUT)
    except TimeoutError:
        return Health(healthy=False, message=f"no answer within {HEALTH_TIMEOUT:g} s")
    except Exception as err:  # noqa: BLE001 - any failure is "unhealthy", with its reason
        return Health(healthy=False, message=str(err) or type(err).__name__)
