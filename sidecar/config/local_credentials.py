"""The table's ``{env}`` and ``{file}`` credentials that this machine cannot give right now.

Not an error by itself: the variable may be set, or the file mounted, only where the sidecar
runs. ``check`` reports each as a warning (an error with ``--strict``), naming the key path.
"""

from __future__ import annotations

from collections.abc import Iterator

from sidecar.config.schema import CloudflareAccount, Rfc2136Account, RoutingTableSpec
from sidecar.credentials.sources import (
    Credential,
    CredentialUnavailable,
    FromEnv,
    FromFile,
    read_local,
)


def unresolved(spec: RoutingTableSpec) -> list[str]:
    """One line per ``{env}`` or ``{file}`` credential that reads as unset, empty or missing."""
    found = []
    for where, credential in _credentials(spec):
        if not isinstance(credential, FromEnv | FromFile):
            continue
        try:
            read_local(credential)
        except CredentialUnavailable as err:
            found.append(f"{where}: {err.message}")
    return found


def _credentials(spec: RoutingTableSpec) -> Iterator[tuple[str, Credential]]:
    for index, account in enumerate(spec.accounts):
        if isinstance(account, CloudflareAccount):
            for key, credential in (("apiToken", account.api_token), ("apiKey", account.api_key)):
                if credential is not None:
                    yield f"accounts[{index}].{key}", credential
        if isinstance(account, Rfc2136Account) and account.tsig is not None:
            yield f"accounts[{index}].tsig.secret", account.tsig.secret
    for index, client in enumerate(spec.clients):
        for position, secret in enumerate(client.secrets or []):
            yield f"clients[{index}].secrets[{position}]", secret
