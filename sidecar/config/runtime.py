"""From a routing table spec (or the embedded default) to the objects that serve requests.

A :class:`Runtime` is immutable: a reload builds a new one and swaps it in whole, and a request
keeps the one it started with.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sidecar.auth.clients import Client
from sidecar.clock import Clock, SystemClock
from sidecar.config.accounts import build_accounts, cloudflare_provider
from sidecar.config.clients import build_clients, env_clients
from sidecar.config.schema import RateLimit, RoutingTableSpec
from sidecar.coordination.base import Coordination
from sidecar.credentials.sources import Credential
from sidecar.credentials.store import CredentialStore
from sidecar.providers.base import ROOT, ZonePolicy
from sidecar.providers.cloudflare.auth import Auth
from sidecar.providers.memory import MemoryProvider
from sidecar.providers.ownership import Owner
from sidecar.routing.table import Account, Route, RoutingTable
from sidecar.settings import Settings

EMBEDDED_DEFAULT = "embedded default (in-memory provider serving every zone)"
SEED_MODE = "CLOUDFLARE_* environment (one Cloudflare account serving every zone it can see)"


@dataclass(frozen=True)
class Runtime:
    """One generation of the routing table with everything built from it."""

    source: str
    table: RoutingTable
    clients: tuple[Client, ...]
    accounts: Mapping[str, Account]
    generation: int = 1
    credentials: tuple[Credential, ...] = ()  # every credential the table names
    dns_classes: tuple[str, ...] = ()  # every DNSClass its clients read

    async def aclose(self) -> None:
        for account in self.accounts.values():
            await account.provider.aclose()


def build(
    spec: RoutingTableSpec,
    settings: Settings,
    *,
    source: str,
    store: CredentialStore | None = None,
    clock: Clock | None = None,
    previous: Runtime | None = None,
    coordination: Coordination,
) -> Runtime:
    """Build everything ``spec`` describes; accounts equal to ``previous``'s are reused."""
    store = store or CredentialStore()
    clock = clock or SystemClock()
    accounts = build_accounts(
        spec.accounts,
        settings,
        store,
        clock,
        previous.accounts if previous else {},
        coordination=coordination,
        zones=_zones_by_account(spec),
    )
    defaults = spec.defaults
    clients = build_clients(spec.clients, settings, store)
    deployment = settings.table.owner_id
    routes = [
        Route(
            ZonePolicy(
                name=zone.name,
                ttl=zone.ttl if zone.ttl is not None else defaults.ttl,
                proxied=defaults.proxied if zone.proxied is None else zone.proxied,
                ownership=zone.ownership or defaults.ownership,
                comment=defaults.comment if zone.comment is None else zone.comment,
                zone_id=zone.zone_id,
                ttl_source=f"zones[{index}].ttl" if zone.ttl is not None else "defaults.ttl",
                orphans=zone.orphans or defaults.orphans,
                drift=zone.drift or defaults.drift,
            ),
            accounts[zone.account],
            frozenset(zone.clients) if zone.clients is not None else None,
        )
        for index, zone in enumerate(spec.zones)
    ]
    owners = {client.name: Owner(deployment, client.dns_class) for client in clients}
    credentials = [c for client in spec.clients for c in client.secrets or []]
    credentials += [c for account in spec.accounts for c in account.credentials]
    return Runtime(
        source=source,
        table=RoutingTable(routes, owners, Owner(deployment)),
        clients=clients,
        accounts=accounts,
        credentials=tuple(credentials),
        dns_classes=tuple(c.dns_class for c in spec.clients if c.dns_class is not None),
    )


def _zones_by_account(spec: RoutingTableSpec) -> dict[str, tuple[str, ...]]:
    found: dict[str, list[str]] = {}
    for zone in spec.zones:
        found.setdefault(zone.account, []).append(zone.name)
    return {account: tuple(dict.fromkeys(names)) for account, names in found.items()}


def without_table(
    settings: Settings, *, coordination: Coordination, clock: Clock | None = None
) -> Runtime:
    """No routing table: the seed-compatible Cloudflare account when ``CLOUDFLARE_*`` are set
    (one account serving every zone it can see, like the guide's backend), else the embedded
    default: one in-memory account serving every zone.
    """
    seed = settings.cloudflare
    if not seed.configured:
        return embedded_default(settings)
    token = seed.api_token.get_secret_value() if seed.api_token else None
    key = seed.api_key.get_secret_value() if seed.api_key and not token else None
    auth = Auth(token=token, key=key, email=seed.email if key else None)
    provider = cloudflare_provider(
        "cloudflare",
        lambda: auth,
        settings,
        clock=clock or SystemClock(),
        limit=RateLimit(),
        base_url=seed.base_url,
        coordination=coordination,
    )
    return _everything(SEED_MODE, Account("cloudflare", provider), settings)


def embedded_default(settings: Settings) -> Runtime:
    """One in-memory account serving every zone."""
    memory = MemoryProvider(snapshot=settings.table.memory_file)
    return _everything(EMBEDDED_DEFAULT, Account("memory", memory), settings)


def _everything(source: str, account: Account, settings: Settings) -> Runtime:
    zone = ZonePolicy(name=ROOT)  # the routing table's defaults, as ZonePolicy declares them
    return Runtime(
        source=source,
        table=RoutingTable([Route(zone, account)], owner=Owner(settings.table.owner_id)),
        clients=env_clients(settings),
        accounts={account.name: account},
    )
