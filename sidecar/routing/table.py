"""The live routing table: which zone, and so which provider account, serves a name."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from sidecar.errors import DomainNotAllowed
from sidecar.providers.base import ROOT, Provider, ZonePolicy


@dataclass(frozen=True, slots=True)
class Account:
    """A provider account, named as in the routing table."""

    name: str
    provider: Provider
    fingerprint: str = ""  # the routing-table entry it was built from (reloads reuse equal ones)


@dataclass(frozen=True, slots=True)
class Route:
    zone: ZonePolicy
    account: Account


class RoutingTable:
    """Zones to accounts; a name goes to the zone with the longest suffix on label boundaries.

    A table never changes (a reload builds a new one), so the route of each name resolved is
    remembered, up to ``REMEMBERED`` names (then forgotten all at once): the same names recur on
    every reconcile.
    """

    REMEMBERED = 4096

    def __init__(self, routes: Iterable[Route]) -> None:
        self._routes = {route.zone.name: route for route in routes}
        self._resolved: dict[str, Route] = {}

    def __iter__(self) -> Iterator[Route]:
        return iter(self._routes.values())

    def __len__(self) -> int:
        return len(self._routes)

    def resolve(self, fqdn: str) -> Route:
        route = self._resolved.get(fqdn)
        if route is None:
            route = self._search(fqdn)
            if len(self._resolved) >= self.REMEMBERED:
                self._resolved.clear()
            self._resolved[fqdn] = route
        return route

    def _search(self, fqdn: str) -> Route:
        labels = fqdn.split(".")
        for start in range(len(labels)):
            route = self._routes.get(".".join(labels[start:]))
            if route is not None:
                return route
        route = self._routes.get(ROOT)
        if route is None:
            raise DomainNotAllowed(
                f"No zone in the routing table covers {fqdn}.", details={"fqdn": fqdn}
            )
        return route
