"""The verifier without a server: its fast paths, the error messages only a failure builds, the
order of the checks, and the HMAC and replay cache underneath."""

from __future__ import annotations

import hashlib
import hmac as std_hmac
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from sidecar.auth import signing
from sidecar.auth.clients import Client, ClientAuth, Verifier, VerifyPolicy
from sidecar.auth.replay import ReplayCache
from sidecar.auth.signing import Algorithm
from sidecar.clock import FrozenClock
from sidecar.credentials.sources import CredentialUnavailable
from sidecar.errors import AuthFailed, RateLimited

SHA256_SECRET = b"sha256-secret"
SHA512_SECRET = b"sha512-secret"
BODY = b'{"operation":"upsert"}'

HOME = Client.fixed("home", Algorithm.SHA256, (SHA256_SECRET,))
LAB = Client.fixed("lab", Algorithm.SHA512, (SHA512_SECRET,))


def _broken(name: str) -> Client:
    def resolve() -> ClientAuth:
        raise CredentialUnavailable(f"Secret dns/{name} key k is missing.")

    return Client(name, resolve)


def _verifier(clock: FrozenClock, *, allow_unsigned: bool = False, capacity: int = 100) -> Verifier:
    return Verifier(ReplayCache(capacity), clock, VerifyPolicy(300.0, allow_unsigned))


def _signed(
    clock: FrozenClock,
    secret: bytes = SHA256_SECRET,
    algorithm: Algorithm = Algorithm.SHA256,
    *,
    offset: float = 0,
    nonce: str = "nonce-1",
) -> dict[str, str]:
    timestamp = signing.format_timestamp(datetime.fromtimestamp(clock.time() + offset, UTC))
    return signing.sign(
        secret, algorithm, "POST", "/records", BODY, timestamp=timestamp, nonce=nonce
    )


async def _refusal(
    verifier: Verifier, clients: tuple[Client, ...], headers: Mapping[str, str]
) -> AuthFailed:
    with pytest.raises(AuthFailed) as refused:
        await verifier.verify(clients, "POST", "/records", headers, BODY)
    return refused.value


@pytest.mark.parametrize("key_size", [0, 1, 63, 64, 65, 127, 128, 129, 300])
@pytest.mark.parametrize(
    ("algorithm", "digest"),
    [(Algorithm.SHA256, hashlib.sha256), (Algorithm.SHA512, hashlib.sha512)],
)
@pytest.mark.parametrize("signed", [b"", b"POST\n/records", bytes(range(256)) * 4])
def test_mac_is_the_standard_hmac(
    algorithm: Algorithm, digest: type, key_size: int, signed: bytes
) -> None:
    """The MAC built from pre-keyed hash states equals ``hmac.new`` for keys shorter than, as
    long as and longer than the hash's block (64 bytes for SHA256, 128 for SHA512), and stays
    so when computed again (the cached states are copied, never fed)."""
    secret = bytes((7 * i + key_size) % 256 for i in range(key_size))
    expected = std_hmac.new(secret, signed, digest).digest()
    assert signing.mac(secret, algorithm, signed) == expected
    assert signing.mac(secret, algorithm, signed) == expected
    assert len(expected) == algorithm.digest_size


async def test_headers_are_read_whatever_their_case() -> None:
    """aiohttp's headers ignore case; a plain mapping with the names as written works too."""
    clock = FrozenClock()
    verifier = _verifier(clock)
    lower = CIMultiDictProxy(CIMultiDict({k.lower(): v for k, v in _signed(clock).items()}))
    assert await verifier.verify((HOME,), "POST", "/records", lower, BODY) is HOME
    plain = _signed(clock, nonce="nonce-2")
    assert await verifier.verify((HOME,), "POST", "/records", plain, BODY) is HOME


async def test_every_missing_header_is_named_in_order() -> None:
    """Absent and empty headers are both missing; the message lists them timestamp, nonce,
    signature."""
    clock = FrozenClock()
    headers = _signed(clock)
    del headers[signing.HEADER_TIMESTAMP]
    headers[signing.HEADER_SIGNATURE] = ""
    refused = await _refusal(_verifier(clock), (HOME,), headers)
    assert refused.reason == "missing_header"
    assert refused.message == (
        "The request is not signed: missing header(s) X-DNS-Timestamp, X-DNS-Signature."
    )
    headers = {signing.HEADER_NONCE: "n"}
    refused = await _refusal(_verifier(clock), (HOME,), headers)
    assert refused.message == (
        "The request is not signed: missing header(s) X-DNS-Timestamp, X-DNS-Signature."
    )


async def test_refusals_are_joined_when_no_client_can_verify() -> None:
    """Every client refused: one message joining why, each reason's own period dropped."""
    clock = FrozenClock()
    unsigned = Client.fixed("open")
    refused = await _refusal(
        _verifier(clock), (_broken("a"), unsigned, _broken("b")), _signed(clock)
    )
    assert refused.reason == "client_unavailable"
    assert refused.message == (
        "The request cannot be authenticated: client 'a': Secret dns/a key k is missing; client "
        "'open' has no HMAC secret, and unsigned requests are accepted only on a loopback "
        "address; client 'b': Secret dns/b key k is missing."
    )
    refused = await _refusal(_verifier(clock), (), _signed(clock))
    assert refused.message == (
        "The request cannot be authenticated: no HMAC client is configured, and unsigned "
        "requests are accepted only on a loopback address."
    )


async def test_a_bad_signature_also_names_the_refused_clients() -> None:
    """Refusals are joined into the bad-signature message too; without any, nothing is added."""
    clock = FrozenClock()
    wrong = _signed(clock, b"wrong")
    refused = await _refusal(_verifier(clock), (_broken("a"), HOME, _broken("b")), wrong)
    assert refused.reason == "bad_signature"
    assert refused.message.endswith(
        "changed in transit. Also refused: client 'a': Secret dns/a key k is missing; "
        "client 'b': Secret dns/b key k is missing."
    )
    refused = await _refusal(_verifier(clock), (HOME,), wrong)
    assert refused.message.endswith("changed in transit.")


async def test_unsigned_client_and_signers() -> None:
    """With an unsigned client beside a signing one, a request without any of the headers is
    the unsigned client's; with some of them it must be signed; alone it takes anything."""
    clock = FrozenClock()
    verifier = _verifier(clock, allow_unsigned=True)
    unsigned = Client.fixed("open")
    assert await verifier.verify((HOME, unsigned), "POST", "/records", {}, BODY) is unsigned
    assert await verifier.verify((HOME, unsigned), "POST", "/records", _signed(clock), BODY) is HOME
    refused = await _refusal(verifier, (HOME, unsigned), {signing.HEADER_NONCE: "n"})
    assert refused.reason == "missing_header"
    assert await verifier.verify((unsigned,), "POST", "/records", _signed(clock), BODY) is unsigned
    assert await verifier.verify((), "POST", "/records", {}, BODY) is None


async def test_timestamp_window_includes_its_bounds() -> None:
    """Exactly 300 s either way is accepted; a second more is not."""
    clock = FrozenClock()
    verifier = _verifier(clock)
    for i, offset in enumerate((-300, 300)):
        headers = _signed(clock, offset=offset, nonce=f"edge-{i}")
        assert await verifier.verify((HOME,), "POST", "/records", headers, BODY) is HOME
    stale = await _refusal(verifier, (HOME,), _signed(clock, offset=-301))
    future = await _refusal(verifier, (HOME,), _signed(clock, offset=301))
    assert (stale.reason, future.reason) == ("stale_timestamp", "future_timestamp")


async def test_signature_length_is_checked_against_every_signer() -> None:
    """Two signers with different algorithms: a length either uses is let through to the MAC
    check; one neither uses lists both."""
    clock = FrozenClock()
    verifier = _verifier(clock)
    clients = (HOME, LAB)
    wrong512 = _signed(clock, b"wrong", Algorithm.SHA512)
    assert (await _refusal(verifier, clients, wrong512)).reason == "bad_signature"
    lab = _signed(clock, SHA512_SECRET, Algorithm.SHA512)
    assert await verifier.verify(clients, "POST", "/records", lab, BODY) is LAB
    short = {**_signed(clock, nonce="short"), signing.HEADER_SIGNATURE: "ab" * 20}
    refused = await _refusal(verifier, clients, short)
    assert refused.reason == "malformed_signature"
    assert refused.message == (
        "Header X-DNS-Signature must be a hex HMAC of 64 characters (SHA256) or 128 characters "
        "(SHA512)."
    )


def _without_nonce(headers: dict[str, str]) -> dict[str, str]:
    del headers[signing.HEADER_NONCE]
    return headers


TS, SIG = signing.HEADER_TIMESTAMP, signing.HEADER_SIGNATURE
SEVERAL_FAULTS: list[tuple[Callable[[FrozenClock], dict[str, str]], str]] = [
    (lambda clock: _without_nonce(_signed(clock, offset=-1000)), "missing_header"),
    (lambda clock: {**_signed(clock, nonce="n" * 200), TS: "yesterday"}, "malformed_timestamp"),
    (lambda clock: _signed(clock, offset=-1000, nonce="n" * 200), "stale_timestamp"),
    (lambda clock: {**_signed(clock, offset=1000), SIG: "zz"}, "future_timestamp"),
    (lambda clock: {**_signed(clock, nonce="n\tn"), SIG: "ab" * 20}, "malformed_nonce"),
    (lambda clock: {**_signed(clock, b"wrong"), SIG: "ab" * 20}, "malformed_signature"),
    (lambda clock: _signed(clock, b"wrong"), "bad_signature"),
]


@pytest.mark.parametrize(("build", "reason"), SEVERAL_FAULTS, ids=[r for _, r in SEVERAL_FAULTS])
async def test_the_first_check_that_fails_decides(
    build: Callable[[FrozenClock], dict[str, str]], reason: str
) -> None:
    """A request with several faults is refused for the first in the order: headers present,
    timestamp, nonce, signature length, signature."""
    clock = FrozenClock()
    assert (await _refusal(_verifier(clock), (HOME,), build(clock))).reason == reason


async def test_record_refuses_replays_and_purges_once_a_second_has_passed() -> None:
    """``record`` (the verifier's call): a nonce seen is refused; expired nonces are forgotten as
    soon as their second is past, and only then; a full cache refuses, saying when to retry."""
    cache = ReplayCache(capacity=2)
    await cache.record("a", 100.0, 110.0, 100.0)
    with pytest.raises(AuthFailed) as replayed:
        await cache.record("a", 100.0, 110.0, 105.0)
    assert replayed.value.message == (
        "The nonce was already used within the last 10 s: a replayed request."
    )
    await cache.record("b", 100.0, 120.0, 100.5)
    with pytest.raises(RateLimited) as full:
        await cache.record("c", 100.0, 130.0, 110.9)  # "a" expires in the second 110: not past
    assert full.value.retry_after == 1
    await cache.record("c", 100.0, 130.0, 111.0)  # the second 110 is past: "a" is gone
    assert len(cache) == 2
    assert not cache.seen("a", 111.0)
    with pytest.raises(RateLimited):  # "b" expires in the second 120: not past yet
        await cache.record("a", 111.0, 141.0, 120.9)
    await cache.record("a", 121.0, 141.0, 121.0)  # now it is, and "a" may be used again
    assert (len(cache), cache.seen("b", 121.0), cache.seen("c", 121.0)) == (2, False, True)


def test_a_nonce_expired_already_is_still_purged() -> None:
    """A nonce whose expiry is in a second purged already goes into the next second's bucket,
    so the next purge forgets it (a purge only visits the seconds since the last one)."""
    cache = ReplayCache(capacity=10)
    assert cache.add("late", expires=150.0, now=200.0)
    assert cache.seen("late", now=200.9)
    assert not cache.seen("late", now=201.0)
    assert len(cache) == 0
