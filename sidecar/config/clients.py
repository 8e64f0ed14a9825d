"""HMAC clients from the routing table (``clients``), a DNSClass, or ``HMAC_SECRET``.

Each client's ``resolve`` reads its settings from their sources at every request, so a rotated
Secret or an edited DNSClass takes effect on the next request without a rebuild.
"""

from __future__ import annotations

from collections.abc import Callable

from sidecar.auth.clients import Client, ClientAuth, ClientKind
from sidecar.auth.signing import Algorithm
from sidecar.config.schema import ClientSpec
from sidecar.credentials.sources import CredentialUnavailable
from sidecar.credentials.store import CredentialStore
from sidecar.settings import Settings

ENV_CLIENT = "env"


def build_clients(
    specs: list[ClientSpec], settings: Settings, store: CredentialStore
) -> tuple[Client, ...]:
    clients = [_client(spec, store) for spec in specs]
    return (*clients, *env_clients(settings))


def env_clients(settings: Settings) -> tuple[Client, ...]:
    """``HMAC_SECRET`` (+ ``HMAC_ALGORITHM``), the guide's way to configure one client."""
    secret = settings.auth.hmac_secret
    if secret is None:
        return ()
    algorithm = Algorithm.parse(settings.auth.hmac_algorithm)
    value = (secret.get_secret_value().encode(),)
    return (Client.fixed(ENV_CLIENT, algorithm, value, kind=ClientKind.ENVIRONMENT),)


def _client(spec: ClientSpec, store: CredentialStore) -> Client:
    zones = tuple(spec.zones) if spec.zones is not None else None
    if spec.dns_class is not None:
        name = spec.dns_class

        def details() -> dict[str, str | None]:
            try:
                return {"server": store.dns_class(name).server}
            except CredentialUnavailable:
                return {"server": None}

        from_cluster = _from_dns_class(name, store)
        return Client(spec.name, from_cluster, zones, ClientKind.DNS_CLASS, name, details)
    algorithm = spec.hmac_algorithm
    credentials = list(spec.secrets or [])

    def resolve() -> ClientAuth:
        keys = tuple(k for c in credentials for k in store.hmac_keys(c))
        return ClientAuth(algorithm, keys, configured=len(credentials))

    return Client(spec.name, resolve, zones)


def _from_dns_class(name: str, store: CredentialStore) -> Callable[[], ClientAuth]:
    def resolve() -> ClientAuth:
        found = store.dns_class(name)
        if not found.signed:
            return ClientAuth()
        try:
            algorithm = Algorithm.parse(found.algorithm or "SHA256")
        except ValueError as err:
            raise CredentialUnavailable(
                f"DNSClass {name}: spec.hmacAuth.algorithm: {err}."
            ) from err
        if found.inline is not None:  # the operator signs with these exact bytes, unstripped
            return ClientAuth(algorithm, (found.inline,))
        assert found.secret is not None  # signed, and not inline
        try:
            keys = store.hmac_keys(found.secret)
        except CredentialUnavailable as err:
            raise CredentialUnavailable(f"DNSClass {name}: {err.message}") from err
        return ClientAuth(algorithm, keys, configured=1)

    return resolve
