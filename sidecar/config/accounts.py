"""Provider accounts from the routing table: a provider object for each ``accounts`` entry.

An account whose entry is unchanged by a reload keeps its provider (with its zone-id cache,
read cache, request budget and connections); only new or changed entries get new ones.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path

from sidecar.clock import Clock
from sidecar.config.schema import (
    AccountSpec,
    CloudflareAccount,
    MemoryAccount,
    RateLimit,
    Rfc2136Account,
)
from sidecar.coordination.base import Coordination
from sidecar.credentials.sources import Credential, CredentialUnavailable
from sidecar.credentials.store import CredentialStore
from sidecar.providers.base import Provider
from sidecar.providers.cloudflare.auth import Auth
from sidecar.providers.memory import MemoryProvider
from sidecar.routing.table import Account
from sidecar.settings import Settings

log = logging.getLogger(__name__)


def build_accounts(
    specs: list[AccountSpec],
    settings: Settings,
    store: CredentialStore,
    clock: Clock,
    previous: Mapping[str, Account],
    *,
    coordination: Coordination,
    zones: Mapping[str, tuple[str, ...]] | None = None,
) -> dict[str, Account]:
    """``zones``: the zone names routed to each account (an RFC 2136 account asks each for its
    SOA as its health check, so they are part of what makes it equal to its predecessor)."""
    accounts: dict[str, Account] = {}
    for spec in specs:
        served = (zones or {}).get(spec.name, ())
        fingerprint = spec.model_dump_json()
        if isinstance(spec, Rfc2136Account):
            fingerprint += repr(served)
        old = previous.get(spec.name)
        if old is not None and old.fingerprint == fingerprint:
            accounts[spec.name] = old
            continue
        provider = _provider(spec, settings, store, clock, coordination, zones=served)
        if old is not None and isinstance(provider, MemoryProvider):
            _carry_over(spec.name, provider, old.provider)
        accounts[spec.name] = Account(spec.name, provider, fingerprint)
    return accounts


def _carry_over(name: str, provider: MemoryProvider, previous: Provider) -> None:
    """An edited memory account keeps its records (they exist nowhere else), and says so."""
    if isinstance(previous, MemoryProvider):
        log.info("memory account %r changed: %s", name, provider.carry_over(previous))
    else:
        log.info("account %r is now a memory account: it starts without records", name)


def _provider(
    spec: AccountSpec,
    settings: Settings,
    store: CredentialStore,
    clock: Clock,
    coordination: Coordination,
    *,
    zones: tuple[str, ...],
) -> Provider:
    if isinstance(spec, MemoryAccount):
        return MemoryProvider(snapshot=Path(spec.file) if spec.file else None)
    if isinstance(spec, Rfc2136Account):
        return rfc2136_provider(spec, settings, store, coordination, zones=zones)
    return cloudflare_provider(
        spec.name,
        _auth_source(spec, store),
        settings,
        clock=clock,
        limit=spec.rate_limit,
        base_url=str(spec.base_url).rstrip("/") if spec.base_url else None,
        read_cache_seconds=spec.read_cache_seconds,
        coordination=coordination,
    )


def cloudflare_provider(
    name: str,
    credentials: Callable[[], Auth],
    settings: Settings,
    *,
    clock: Clock,
    limit: RateLimit,
    base_url: str | None,
    coordination: Coordination,
    read_cache_seconds: float = 0.0,
) -> Provider:
    """Budget, write locks and read-cache versions from ``coordination`` (in-process, or
    shared by replicas with Redis: ``app.make_coordination`` decides which)."""
    # The SDK is a large import: only processes with a Cloudflare account pay for it.
    from sidecar.providers.cloudflare.client import CloudflareApi  # noqa: PLC0415
    from sidecar.providers.cloudflare.provider import CloudflareProvider  # noqa: PLC0415

    budget = coordination.budget(name, limit.requests, limit.per_seconds)
    api = CloudflareApi(
        name, credentials, budget, base_url=base_url, timeout=settings.server.provider_timeout
    )
    return CloudflareProvider(
        api,
        clock,
        locks=coordination.locks,
        versions=coordination.versions,
        read_cache_seconds=read_cache_seconds,
    )


def rfc2136_provider(
    spec: Rfc2136Account,
    settings: Settings,
    store: CredentialStore,
    coordination: Coordination,
    *,
    zones: tuple[str, ...],
) -> Provider:
    """A DNS server spoken to with RFC 2136 UPDATE; the TSIG secret read at each message."""
    from sidecar.providers.rfc2136.provider import Rfc2136Provider  # noqa: PLC0415
    from sidecar.providers.rfc2136.server import DnsServer, TsigKey  # noqa: PLC0415

    tsig = spec.tsig

    def key() -> TsigKey | None:
        if tsig is None:
            return None
        try:
            secret = store.read(tsig.secret)
        except CredentialUnavailable as err:
            raise CredentialUnavailable(f"Account {spec.name!r}: {err.message}") from err
        return TsigKey(tsig.name, tsig.algorithm, secret)

    server = DnsServer(spec.name, spec.server, key, timeout=settings.server.provider_timeout)
    return Rfc2136Provider(server, locks=coordination.locks, zones=zones)


def _auth_source(spec: CloudflareAccount, store: CredentialStore) -> Callable[[], Auth]:
    """Reads the account's credentials at each call, so a rotation takes effect at once."""

    def read(credential: Credential | None) -> str:
        assert credential is not None  # the schema allows exactly one auth mode
        try:
            return store.read(credential)
        except CredentialUnavailable as err:
            raise CredentialUnavailable(f"Account {spec.name!r}: {err.message}") from err

    def current() -> Auth:
        if spec.api_token is not None:
            return Auth(token=read(spec.api_token))
        return Auth(key=read(spec.api_key), email=spec.email)

    return current
