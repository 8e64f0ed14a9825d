"""From a routing table spec (or the embedded default) to the objects that serve requests.

A :class:`Runtime` is immutable: a reload builds a new one and swaps it in whole, and a request
keeps the one it started with.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sidecar.auth.clients import Client
from sidecar.auth.hmac import Algorithm
from sidecar.clock import Clock, SystemClock
from sidecar.config.schema import (
    ClientSpec,
    CloudflareAccount,
    Defaults,
    MemoryAccount,
    RateLimit,
    RoutingTableSpec,
)
from sidecar.credentials.sources import Credential, CredentialUnavailable, FromSecret, read_local
from sidecar.errors import ProviderUnavailable
from sidecar.providers.base import (
    DeleteResult,
    Health,
    Provider,
    UpsertResult,
    ZonePolicy,
)
from sidecar.providers.cloudflare.budget import Budget
from sidecar.providers.cloudflare.client import Auth, CloudflareApi
from sidecar.providers.cloudflare.provider import CloudflareProvider
from sidecar.providers.memory import MemoryProvider
from sidecar.records import RecordKey, RecordSet
from sidecar.routing.table import ROOT, Account, Route, RoutingTable
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
    notes: tuple[str, ...] = field(default=())

    async def aclose(self) -> None:
        for account in self.accounts.values():
            await account.provider.aclose()


def build(
    spec: RoutingTableSpec, settings: Settings, *, source: str, clock: Clock | None = None
) -> Runtime:
    clock = clock or SystemClock()
    accounts = {entry.name: _account(entry, settings, clock) for entry in spec.accounts}
    routes = [
        Route(
            ZonePolicy(
                name=zone.name,
                ttl=zone.ttl if zone.ttl is not None else spec.defaults.ttl,
                proxied=spec.defaults.proxied if zone.proxied is None else zone.proxied,
                ownership=zone.ownership or spec.defaults.ownership,
                comment=spec.defaults.comment if zone.comment is None else zone.comment,
                zone_id=zone.zone_id,
            ),
            accounts[zone.account],
        )
        for zone in spec.zones
    ]
    clients = [_client(client) for client in spec.clients]
    return Runtime(
        source=source,
        table=RoutingTable(routes),
        clients=(*clients, *_env_clients(settings)),
        accounts=accounts,
    )


def without_table(settings: Settings, clock: Clock | None = None) -> Runtime:
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
    provider = _cloudflare(
        "cloudflare",
        lambda: auth,
        settings,
        clock=clock,
        limit=RateLimit(),
        base_url=seed.base_url,
    )
    account = Account("cloudflare", provider)
    zone = ZonePolicy(name=ROOT, ttl=Defaults().ttl)
    return Runtime(
        source=SEED_MODE,
        table=RoutingTable([Route(zone, account)]),
        clients=_env_clients(settings),
        accounts={account.name: account},
    )


def embedded_default(settings: Settings) -> Runtime:
    """One in-memory account serving every zone."""
    memory = Account("memory", MemoryProvider(snapshot=settings.table.memory_file))
    defaults = Defaults()
    zone = ZonePolicy(name=ROOT, ttl=defaults.ttl, ownership=defaults.ownership)
    return Runtime(
        source=EMBEDDED_DEFAULT,
        table=RoutingTable([Route(zone, memory)]),
        clients=_env_clients(settings),
        accounts={memory.name: memory},
    )


def _env_clients(settings: Settings) -> tuple[Client, ...]:
    secret = settings.auth.hmac_secret
    if secret is None:
        return ()
    algorithm = Algorithm.parse(settings.auth.hmac_algorithm)
    return (Client("env", algorithm, (secret.get_secret_value().encode(),)),)


def _client(spec: ClientSpec) -> Client:
    zones = tuple(spec.zones) if spec.zones is not None else None
    if spec.dns_class is not None:
        return Client(
            spec.name,
            zones=zones,
            refusal=f"client {spec.name!r}: reading DNSClass {spec.dns_class!r} needs the "
            "Kubernetes API, which this build does not use yet",
        )
    secrets: list[bytes] = []
    for credential in spec.secrets or []:
        if isinstance(credential, FromSecret):
            return Client(
                spec.name,
                zones=zones,
                refusal=f"client {spec.name!r}: {credential.describe()} needs the Kubernetes "
                "API, which this build does not use yet",
            )
        try:
            secrets.append(read_local(credential).encode())
        except CredentialUnavailable as err:
            return Client(spec.name, zones=zones, refusal=f"client {spec.name!r}: {err.message}")
    return Client(spec.name, spec.hmac_algorithm, tuple(secrets), zones)


def _account(spec: CloudflareAccount | MemoryAccount, settings: Settings, clock: Clock) -> Account:
    if isinstance(spec, MemoryAccount):
        snapshot = Path(spec.file) if spec.file else None
        return Account(spec.name, MemoryProvider(snapshot=snapshot))
    base_url = str(spec.base_url).rstrip("/") if spec.base_url else None
    provider = _cloudflare(
        spec.name,
        _auth_source(spec),
        settings,
        clock=clock,
        limit=spec.rate_limit,
        base_url=base_url,
        read_cache_seconds=spec.read_cache_seconds,
    )
    return Account(spec.name, provider)


def _cloudflare(
    name: str,
    credentials: Callable[[], Auth],
    settings: Settings,
    *,
    clock: Clock | None,
    limit: RateLimit,
    base_url: str | None,
    read_cache_seconds: float = 0.0,
) -> CloudflareProvider:
    clock = clock or SystemClock()
    budget = Budget(name, limit.requests, limit.per_seconds, clock)
    api = CloudflareApi(
        name, credentials, budget, base_url=base_url, timeout=settings.server.provider_timeout
    )
    return CloudflareProvider(api, clock, read_cache_seconds=read_cache_seconds)


def _auth_source(spec: CloudflareAccount) -> Callable[[], Auth]:
    """Reads the account's credentials at each call, so a changed source takes effect."""

    def read(credential: Credential) -> str:
        if isinstance(credential, FromSecret):
            raise CredentialUnavailable(
                f"Account {spec.name!r}: {credential.describe()} needs the Kubernetes API, "
                "which this build does not use yet."
            )
        try:
            return read_local(credential)
        except CredentialUnavailable as err:
            raise CredentialUnavailable(f"Account {spec.name!r}: {err.message}") from err

    def current() -> Auth:
        if spec.api_token is not None:
            return Auth(token=read(spec.api_token))
        assert spec.api_key is not None  # the schema allows exactly one auth mode
        return Auth(key=read(spec.api_key), email=spec.email)

    return current


class UnavailableProvider:
    """Stands in for an account that cannot serve; every call says why."""

    def __init__(self, kind: str, reason: str) -> None:
        self.kind = kind
        self.reason = reason

    async def upsert(self, zone: ZonePolicy, record: RecordSet) -> UpsertResult:
        raise ProviderUnavailable(self.reason)

    async def get(self, zone: ZonePolicy, key: RecordKey) -> RecordSet | None:
        raise ProviderUnavailable(self.reason)

    async def delete(self, zone: ZonePolicy, key: RecordKey) -> DeleteResult:
        raise ProviderUnavailable(self.reason)

    async def health(self) -> Health:
        return Health(healthy=False, message=self.reason)

    async def aclose(self) -> None:
        return None


_: type[Provider] = UnavailableProvider
