"""Who may call: the HMAC clients (one per DNSClass) and the verification of a request."""

from __future__ import annotations

import enum
import hmac
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from multidict import istr

from sidecar.auth import signing
from sidecar.auth.signing import Algorithm
from sidecar.clock import Clock
from sidecar.coordination.base import NonceStore
from sidecar.credentials.sources import CredentialUnavailable
from sidecar.errors import AuthFailed
from sidecar.records.names import is_within

MAX_NONCE = 128

# The header names as ``istr``: aiohttp's headers (a CIMultiDict) look one up without case-folding
# it first, a third of the cost; any other mapping sees the same string.
_SIGNATURE = istr(signing.HEADER_SIGNATURE)
_TIMESTAMP = istr(signing.HEADER_TIMESTAMP)
_NONCE = istr(signing.HEADER_NONCE)


@dataclass(frozen=True, slots=True)
class ClientAuth:
    """A client's HMAC settings in force: its algorithm and secrets (none: unsigned requests)."""

    algorithm: Algorithm = Algorithm.SHA256
    secrets: tuple[bytes, ...] = field(default=(), repr=False)  # every key that verifies
    # how many secrets are configured, when fewer than the keys: a Kubernetes Secret stored
    # with a trailing newline verifies as stored and trimmed (two keys, one secret)
    configured: int | None = field(default=None, compare=False)

    @property
    def secret_count(self) -> int:
        """Secrets configured (for people: ``/status``)."""
        return len(self.secrets) if self.configured is None else self.configured


@dataclass(frozen=True, slots=True)
class Refused:
    """Why a client's requests are refused now (its settings cannot be read)."""

    reason: str


ClientState = ClientAuth | Refused


class ClientKind(enum.Enum):
    """Where a client's settings come from."""

    TABLE = "routing table"
    ENVIRONMENT = "HMAC_SECRET environment"
    DNS_CLASS = "DNSClass"  # read from the cluster, so known only once the API answers


def _unsigned() -> ClientAuth:
    return ClientAuth()


@dataclass(frozen=True, slots=True)
class Client:
    """One caller (one per DNSClass). ``resolve`` gives its settings now, reading them from their
    sources at each call (so rotations apply at once), or raises ``CredentialUnavailable``: then
    the client's requests are refused, saying why.
    """

    name: str
    resolve: Callable[[], ClientAuth] = _unsigned
    zones: tuple[str, ...] | None = None  # None: every zone
    kind: ClientKind = ClientKind.TABLE
    dns_class: str | None = None  # the DNSClass it reads, for kind DNS_CLASS
    details: Callable[[], dict[str, str | None]] = dict  # more to show on /status

    @classmethod
    def fixed(
        cls,
        name: str,
        algorithm: Algorithm = Algorithm.SHA256,
        secrets: tuple[bytes, ...] = (),
        zones: tuple[str, ...] | None = None,
        kind: ClientKind = ClientKind.TABLE,
    ) -> Client:
        auth = ClientAuth(algorithm, secrets)
        return cls(name, lambda: auth, zones, kind)

    @property
    def source(self) -> str:
        """Where its settings come from, for people: ``DNSClass home``, ``routing table``..."""
        if self.dns_class is not None:
            return f"{self.kind.value} {self.dns_class}"
        return self.kind.value

    def state(self) -> ClientState:
        """The settings in force, or why there are none."""
        try:
            return self.resolve()
        except CredentialUnavailable as err:
            return Refused(f"client {self.name!r}: {err.message}")

    def may_change(self, fqdn: str) -> bool:
        return self.zones is None or any(is_within(fqdn, zone) for zone in self.zones)


@dataclass(frozen=True, slots=True)
class VerifyPolicy:
    """How the verifier judges a request: the timestamp window and whether unsigned may pass."""

    skew: float = 300.0  # seconds a timestamp may be off, either way
    allow_unsigned: bool = True  # loopback listener, or --allow-unauthenticated


class Verifier:
    """Checks a request's signature headers against the configured clients.

    The replay cache outlives any one set of clients (a reload must not forget the nonces
    already seen), so the verifier owns it and each call is given the clients in force. It is
    in-process, or shared by every replica in Redis (then recording a nonce is a round trip,
    and a failure refuses the request: never served without its replay check).
    """

    def __init__(self, replay: NonceStore, clock: Clock, settings: VerifyPolicy) -> None:
        self.replay = replay
        self.clock = clock
        self.settings = settings

    async def verify(
        self,
        clients: Sequence[Client],
        method: str,
        path: str,
        headers: Mapping[str, str],
        body: bytes,
    ) -> Client | None:
        """The client that sent the request; ``None`` when nobody is configured at all.

        The checks run in a fixed order (it decides which error a request with several faults
        gets). Each is a cheap test of the common case, a well-formed signed request, and what
        only an error message needs is worked out once the test has failed.
        """
        if not clients and self.settings.allow_unsigned:
            return None
        signature = headers.get(_SIGNATURE)
        timestamp = headers.get(_TIMESTAMP)
        nonce = headers.get(_NONCE)
        signers, unsigned, refusals = self._partition(clients)
        bare = signature is None and timestamp is None and nonce is None
        if unsigned and (not signers or bare):
            return unsigned[0]
        if not signers:
            raise AuthFailed(
                f"The request cannot be authenticated: {'; '.join(refusals)}.",
                reason="client_unavailable",
            )
        if not (timestamp and nonce and signature):  # absent or empty
            raise _missing_headers(timestamp, nonce, signature)
        now = self.clock.time()
        expires = self._check_timestamp(timestamp, now)
        if not 1 <= len(nonce) <= MAX_NONCE or not (nonce.isascii() and nonce.isprintable()):
            raise AuthFailed(
                f"Header {signing.HEADER_NONCE} must be 1 to {MAX_NONCE} printable ASCII "
                "characters.",
                reason="malformed_nonce",
            )
        try:
            given = bytes.fromhex(signature)
        except ValueError:
            given = b""
        size = len(given)
        for _, auth in signers:
            if auth.algorithm.digest_size == size:
                break
        else:  # no signer uses an algorithm of that length
            raise AuthFailed(_length_problem(signers, size), reason="malformed_signature")
        client = _match(signers, signing.message(method, path, timestamp, nonce, body), given)
        if client is None:
            refused = "; ".join(refusals)
            raise AuthFailed(
                "The signature does not match: wrong secret or algorithm, or the method, path, "
                "timestamp, nonce or body was changed in transit."
                + (f" Also refused: {refused}." if refused else ""),
                reason="bad_signature",
            )
        await self.replay.record(nonce, expires - self.settings.skew, expires, now)
        return client

    def _partition(
        self, clients: Sequence[Client]
    ) -> tuple[list[tuple[Client, ClientAuth]], list[Client], list[str]]:
        """The clients that sign (with their settings now), those that do not, and why the others
        are refused (joined with "; " into one message, then one period)."""
        signers: list[tuple[Client, ClientAuth]] = []
        unsigned: list[Client] = []
        refusals: list[str] = []
        for client in clients:
            state = client.state()  # each request: a rotation applies at once
            if isinstance(state, Refused):
                refusals.append(state.reason.rstrip("."))
            elif state.secrets:
                signers.append((client, state))
            elif self.settings.allow_unsigned:
                unsigned.append(client)
            else:
                refusals.append(
                    f"client {client.name!r} has no HMAC secret, and unsigned requests are "
                    "accepted only on a loopback address"
                )
        if not clients:
            refusals.append(
                "no HMAC client is configured, and unsigned requests are accepted only on a "
                "loopback address"
            )
        return signers, unsigned, refusals

    def _check_timestamp(self, raw: str, now: float) -> float:
        """When a request signed at ``raw`` can no longer be accepted; ``AuthFailed`` when it
        cannot be now."""
        moment = signing.parse_timestamp(raw)
        skew = self.settings.skew
        if moment is not None and now - skew <= moment <= now + skew:
            return moment + skew
        if moment is None:
            raise AuthFailed(
                f"Header {signing.HEADER_TIMESTAMP} is not an RFC 3339 timestamp "
                "(like 2025-12-30T10:00:00Z).",
                reason="malformed_timestamp",
            )
        # Offsets are rounded up: one refused for being over 300 s never reads "300 s".
        if moment < now - skew:
            raise AuthFailed(
                f"The timestamp is stale: {math.ceil(now - moment)} s old, more than the "
                f"{skew:g} s allowed. Check the clocks of the operator and the sidecar.",
                reason="stale_timestamp",
            )
        raise AuthFailed(
            f"The timestamp is {math.ceil(moment - now)} s in the future, more than the "
            f"{skew:g} s allowed. Check the clocks of the operator and the sidecar.",
            reason="future_timestamp",
        )


def _missing_headers(timestamp: str | None, nonce: str | None, signature: str | None) -> AuthFailed:
    """The error for a request to a signing client without all three headers (or with one
    empty): it names each one missing."""
    missing = [
        name
        for name, value in (
            (signing.HEADER_TIMESTAMP, timestamp),
            (signing.HEADER_NONCE, nonce),
            (signing.HEADER_SIGNATURE, signature),
        )
        if not value
    ]
    return AuthFailed(
        f"The request is not signed: missing header(s) {', '.join(missing)}.",
        reason="missing_header",
    )


def _length_problem(signers: Sequence[tuple[Client, ClientAuth]], size: int) -> str:
    """Why a signature of ``size`` bytes fits no client: another algorithm's length, or none."""
    header = signing.HEADER_SIGNATURE
    configured = sorted({auth.algorithm for _, auth in signers}, key=lambda a: a.digest_size)
    expected = " or ".join(f"{2 * a.digest_size} characters ({a.value})" for a in configured)
    other = [a for a in Algorithm if a.digest_size == size and a not in configured]
    if not other:
        return f"Header {header} must be a hex HMAC of {expected}."
    names = sorted({client.name for client, _ in signers})
    who = f"client {names[0]!r} is" if len(names) == 1 else "the clients are"
    return (
        f"Header {header} has {2 * size} hex characters, the length of an HMAC-{other[0].value}, "
        f"but {who} configured for {' and '.join(a.value for a in configured)}: the operator "
        "and the sidecar must use the same algorithm (DNSClass spec.hmacAuth.algorithm)."
    )


def _match(
    signers: Sequence[tuple[Client, ClientAuth]], signed: bytes, given: bytes
) -> Client | None:
    found: Client | None = None
    for client, auth in signers:
        if auth.algorithm.digest_size != len(given):
            continue
        for secret in auth.secrets:
            if hmac.compare_digest(signing.mac(secret, auth.algorithm, signed), given):
                found = found or client
    return found
