"""Building what tests serve from, in one place: a :class:`Runtime` around given providers."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from sidecar.auth.clients import Client
from sidecar.config.runtime import Runtime
from sidecar.providers.base import ROOT, Provider, ZonePolicy
from sidecar.routing.table import Account, Route, RoutingTable


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
