"""What a DNSClass says about how its operator signs: ``spec.hmacAuth`` and ``spec.server``.

The operator (``pkg/secret/secret.go``) signs with ``hmacAuth.secret`` when it is set, inline
text "for testing only" that wins over ``secretRef``; an empty inline secret makes it send
unsigned requests; ``hmacAuth`` with neither makes it refuse to send anything. This reads the
same way, so the two sides cannot disagree about the secret.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

from sidecar.credentials.objects import DNSClass, DNSClassSpec, HmacAuth, SecretKeySelector
from sidecar.credentials.sources import CredentialUnavailable, FromSecret, SecretKeyRef


@dataclass(frozen=True, slots=True)
class DnsClassAuth:
    name: str
    server: str | None
    algorithm: str | None  # None: no hmacAuth, the operator sends unsigned requests
    secret: FromSecret | None
    inline: bytes | None = field(default=None, repr=False)  # spec.hmacAuth.secret, as the bytes
    default_ttl: int | None = None  # spec.defaultTTL: what the operator sends without spec.ttl

    @property
    def signed(self) -> bool:
        return self.secret is not None or bool(self.inline)

    @property
    def has_inline(self) -> bool:
        """``spec.hmacAuth.secret`` is set (even empty): it decides, ``secretRef`` is ignored."""
        return self.inline is not None


def parse(name: str, obj: DNSClass) -> DnsClassAuth:
    """What ``obj`` says. The object comes as stored, so each part is checked to be what its
    type says (read as ``object`` first) before it is used as such."""
    found: object = obj.get("spec")
    spec = cast("DNSClassSpec", found) if isinstance(found, dict) else DNSClassSpec()
    server = spec.get("server") if isinstance(spec.get("server"), str) else None
    ttl: object = spec.get("defaultTTL")
    default_ttl = ttl if isinstance(ttl, int) and not isinstance(ttl, bool) else None
    raw_auth: object = spec.get("hmacAuth")
    if raw_auth is None:
        return DnsClassAuth(name, server, None, None, default_ttl=default_ttl)
    if not isinstance(raw_auth, dict):
        raise CredentialUnavailable(f"DNSClass {name}: spec.hmacAuth is not an object.")
    hmac_auth = cast("HmacAuth", raw_auth)
    algorithm = str(hmac_auth.get("algorithm") or "SHA256")
    inline: object = hmac_auth.get("secret")
    if inline is not None:
        if not isinstance(inline, str):
            raise CredentialUnavailable(f"DNSClass {name}: spec.hmacAuth.secret is not a string.")
        return DnsClassAuth(name, server, algorithm, None, inline.encode(), default_ttl)
    raw_ref: object = hmac_auth.get("secretRef")
    if raw_ref is None:
        raise CredentialUnavailable(
            f"DNSClass {name}: spec.hmacAuth has neither secret nor secretRef, so there is no "
            "secret to verify with (the operator refuses to send requests for it too)."
        )
    ref = cast("SecretKeySelector", raw_ref) if isinstance(raw_ref, dict) else None
    if ref is None or not ref.get("name") or not ref.get("key"):
        raise CredentialUnavailable(
            f"DNSClass {name}: spec.hmacAuth.secretRef needs name and key (and namespace)."
        )
    secret = FromSecret(
        secretRef=SecretKeyRef(namespace=ref.get("namespace"), name=ref["name"], key=ref["key"])
    )
    return DnsClassAuth(name, server, algorithm, secret, default_ttl=default_ttl)
