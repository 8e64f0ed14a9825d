"""The live routing table: which zone, and so which provider account, serves a name for a client.

A zone entry open to every client, or only to those it names (``clients``), so one process can
serve the same zone name from two providers to two clients: split horizon (SPEC section 10).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from sidecar.errors import DomainNotAllowed
from sidecar.providers.base import ANYONE, ROOT, Provider, ZonePolicy
from sidecar.providers.ownership import Owner
from sidecar.records.names import is_within


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
    clients: frozenset[str] | None = None  # the clients it routes (None: every client)

    def open_to(self, client: str | None) -> bool:
        return self.clients is None or client in self.clients


class _View:
    """The routes one client sees, by zone name, each with that client's owner; and the route
    of each name resolved for it, up to ``RoutingTable.REMEMBERED`` names."""

    __slots__ = ("client", "resolved", "routes")

    def __init__(self, client: str | None, routes: Iterable[Route], owner: Owner) -> None:
        self.client = client
        self.routes = {
            route.zone.name: dataclasses.replace(
                route, zone=dataclasses.replace(route.zone, owner=owner)
            )
            for route in routes
            if route.open_to(client)
        }
        self.resolved: dict[str, Route] = {}


class RoutingTable:
    """Zones to accounts, per client; a name goes to the zone with the longest suffix on label
    boundaries among the entries open to the calling client.

    A table never changes (a reload builds a new one), so each client's view is built once here,
    its routes carrying a ``ZonePolicy`` with that client's owner (``owners``: by client name;
    a caller not named there, or none, sees the entries without ``clients`` as ``owner``), and
    the route of each (client, name) resolved is remembered, up to ``REMEMBERED`` names per
    client (then forgotten all at once): the same names recur on every reconcile.
    """

    REMEMBERED = 4096

    def __init__(
        self,
        routes: Iterable[Route],
        owners: Mapping[str, Owner] | None = None,
        owner: Owner = ANYONE,
    ) -> None:
        self._entries = tuple(routes)
        self._anyone = _View(None, self._entries, owner)
        self._views: dict[str | None, _View] = {
            name: _View(name, self._entries, client_owner)
            for name, client_owner in (owners or {}).items()
        }

    def __iter__(self) -> Iterator[Route]:
        """Every entry, as the table names it (open to its ``clients``)."""
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def clients(self) -> tuple[str, ...]:
        """The clients with a view of their own (the others see the entries open to all)."""
        return tuple(name for name in self._views if name is not None)

    def routes_for(self, client: str | None) -> list[Route]:
        """The routes a client sees, with its owner on each zone."""
        return list(self._views.get(client, self._anyone).routes.values())

    def resolve(self, fqdn: str, client: str | None = None) -> Route:
        view = self._views.get(client, self._anyone)
        route = view.resolved.get(fqdn)
        if route is None:
            route = self._search(view, fqdn, client)
            if len(view.resolved) >= self.REMEMBERED:
                view.resolved.clear()
            view.resolved[fqdn] = route
        return route

    def _search(self, view: _View, fqdn: str, client: str | None) -> Route:
        routes = view.routes
        labels = fqdn.split(".")
        for start in range(len(labels)):
            route = routes.get(".".join(labels[start:]))
            if route is not None:
                return route
        route = routes.get(ROOT)
        if route is None:
            raise DomainNotAllowed(self._uncovered(client, fqdn), details={"fqdn": fqdn})
        return route

    def _uncovered(self, client: str | None, fqdn: str) -> str:
        """Why no zone covers ``fqdn`` for this client: none at all, or only other clients'."""
        others = sorted(
            {
                f"{route.zone.name} (clients {', '.join(sorted(route.clients or ()))})"
                for route in self._entries
                if not route.open_to(client) and is_within(fqdn, route.zone.name)
            }
        )
        if not others:
            return f"No zone in the routing table covers {fqdn}."
        who = f"client {client!r}" if client is not None else "unsigned callers"
        return (
            f"No zone open to {who} covers {fqdn}: {'; '.join(others)} route only the clients "
            "they name (add the client to the zone entry's clients, or sign as one of them)."
        )
