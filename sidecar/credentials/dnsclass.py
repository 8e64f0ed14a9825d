"""What a DNSClass says about how its operator signs: ``spec.hmacAuth`` and ``spec.server``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sidecar.credentials.sources import CredentialUnavailable, FromSecret, SecretKeyRef


@dataclass(frozen=True, slots=True)
class DnsClassAuth:
    name: str
    server: str | None
    algorithm: str | None  # None: no hmacAuth, the operator sends unsigned requests
    secret: FromSecret | None

    @property
    def signed(self) -> bool:
        return self.secret is not None


def parse(name: str, obj: dict[str, Any]) -> DnsClassAuth:
    found = obj.get("spec")
    spec: dict[str, Any] = found if isinstance(found, dict) else {}
    server = spec.get("server") if isinstance(spec.get("server"), str) else None
    hmac_auth = spec.get("hmacAuth")
    if not hmac_auth:
        return DnsClassAuth(name, server, None, None)
    if not isinstance(hmac_auth, dict):
        raise CredentialUnavailable(f"DNSClass {name}: spec.hmacAuth is not an object.")
    ref = hmac_auth.get("secretRef")
    if not isinstance(ref, dict) or not ref.get("name") or not ref.get("key"):
        raise CredentialUnavailable(
            f"DNSClass {name}: spec.hmacAuth.secretRef needs name and key (and namespace)."
        )
    secret = FromSecret(
        secretRef=SecretKeyRef(namespace=ref.get("namespace"), name=ref["name"], key=ref["key"])
    )
    return DnsClassAuth(name, server, str(hmac_auth.get("algorithm") or "SHA256"), secret)
