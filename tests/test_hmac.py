"""HMAC authentication over loopback: each way a request can fail, and what must pass."""

from __future__ import annotations

import hashlib
import hmac as std_hmac
import json
from datetime import UTC, datetime

import pytest

from sidecar.app import METRICS
from sidecar.auth import signing
from sidecar.auth.clients import Client, ClientAuth
from sidecar.auth.replay import ReplayCache
from sidecar.auth.signing import Algorithm
from sidecar.clock import FrozenClock
from sidecar.credentials.sources import CredentialUnavailable
from sidecar.providers.memory import MemoryProvider
from tests.builders import make_runtime
from tests.conftest import SECRET, Caller, Sidecar, StartSidecar, make_settings

OLD_SECRET = b"previous-secret"
OTHER_SECRET = b"sha512-client-secret"


def _missing() -> ClientAuth:
    raise CredentialUnavailable("Secret dns/x key k is missing")


def stamp(clock: FrozenClock, offset: float = 0) -> str:
    return signing.format_timestamp(datetime.fromtimestamp(clock.time() + offset, UTC))


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
async def sidecar(start_sidecar: StartSidecar, clock: FrozenClock) -> Sidecar:
    clients = (
        Client.fixed("cloudflare", Algorithm.SHA256, (SECRET, OLD_SECRET)),
        Client.fixed("home", Algorithm.SHA512, (OTHER_SECRET,), zones=("home.example",)),
    )
    return await start_sidecar(
        runtime=make_runtime({"memory": MemoryProvider()}, clients=clients),
        clock=clock,
        secret=SECRET,
    )


def test_signed_string_matches_the_protocol() -> None:
    """METHOD\\nPATH\\nTIMESTAMP\\nNONCE[\\nBODY], the body part left out when empty."""
    ts, nonce, body = "2025-12-30T10:00:00Z", "550e8400", b'{"a":1}'
    with_body = std_hmac.new(
        b"k", b"POST\n/records\n2025-12-30T10:00:00Z\n550e8400\n" + body, hashlib.sha256
    ).hexdigest()
    without = std_hmac.new(
        b"k", b"DELETE\n/records/A/x.com/www\n2025-12-30T10:00:00Z\n550e8400", hashlib.sha512
    ).hexdigest()
    signed = signing.sign(
        b"k", Algorithm.SHA256, "POST", "/records", body, timestamp=ts, nonce=nonce
    )
    assert signed[signing.HEADER_SIGNATURE] == with_body
    signed = signing.sign(
        b"k", Algorithm.SHA512, "DELETE", "/records/A/x.com/www", timestamp=ts, nonce=nonce
    )
    assert signed[signing.HEADER_SIGNATURE] == without


async def test_both_clients_and_both_secrets_verify(sidecar: Sidecar, clock: FrozenClock) -> None:
    """Two clients with their own algorithms; the old secret of a rotation still verifies."""
    caller = sidecar.caller
    ts = stamp(clock)
    assert (await caller.call("GET", "/health", timestamp=ts)).status == 200
    assert (await caller.call("GET", "/health", secret=OLD_SECRET, timestamp=ts)).status == 200
    home = await caller.upsert(
        "A",
        "home.example",
        "nas",
        ["192.0.2.5"],
        secret=OTHER_SECRET,
        algorithm=Algorithm.SHA512,
        timestamp=ts,
    )
    assert home.status == 200
    # the SHA512 client is limited to its zone; the SHA256 client is not
    elsewhere = await caller.upsert(
        "A",
        "example.com",
        "nas",
        ["192.0.2.5"],
        secret=OTHER_SECRET,
        algorithm=Algorithm.SHA512,
        timestamp=ts,
    )
    assert elsewhere.code == "DOMAIN_NOT_ALLOWED"
    assert (
        await caller.upsert("A", "example.com", "nas", ["192.0.2.5"], timestamp=ts)
    ).status == 200


async def test_upper_case_signature_is_accepted(sidecar: Sidecar, clock: FrozenClock) -> None:
    """The signature is hex in either case."""
    ts, nonce = stamp(clock), "upper-case"
    signature = signing.sign(SECRET, Algorithm.SHA256, "GET", "/health", timestamp=ts, nonce=nonce)[
        signing.HEADER_SIGNATURE
    ]
    reply = await sidecar.caller.call(
        "GET",
        "/health",
        sign=False,
        headers={
            signing.HEADER_TIMESTAMP: ts,
            signing.HEADER_NONCE: nonce,
            signing.HEADER_SIGNATURE: signature.upper(),
        },
    )
    assert reply.status == 200


async def _refused(caller: Caller, reason: str, **kwargs: object) -> str:
    reply = await caller.call(**kwargs)  # type: ignore[arg-type]
    assert (reply.status, reply.code) == (401, "AUTH_FAILED"), reply.body
    assert reply.body["error"]["details"]["reason"] == reason
    return reply.message


async def test_replayed_nonce(sidecar: Sidecar, clock: FrozenClock) -> None:
    """The same nonce twice within the window is refused, even with a fresh timestamp."""
    caller = sidecar.caller
    assert (await caller.call("GET", "/health", nonce="n-1", timestamp=stamp(clock))).status == 200
    clock.advance(30)
    message = await _refused(
        caller, "replayed_nonce", method="GET", path="/health", nonce="n-1", timestamp=stamp(clock)
    )
    assert message == "The nonce was already used within the last 300 s: a replayed request."


async def test_nonce_forgotten_after_the_window(sidecar: Sidecar, clock: FrozenClock) -> None:
    """Once no request with that nonce could be accepted anyway, the nonce is usable again."""
    caller = sidecar.caller
    assert (await caller.call("GET", "/health", nonce="n-2", timestamp=stamp(clock))).status == 200
    clock.advance(302)
    assert (await caller.call("GET", "/health", nonce="n-2", timestamp=stamp(clock))).status == 200


async def test_stale_and_future_timestamps(sidecar: Sidecar, clock: FrozenClock) -> None:
    """Outside ±300 s either way is refused, with the direction named; inside is accepted."""
    caller = sidecar.caller
    stale = await _refused(
        caller, "stale_timestamp", method="GET", path="/health", timestamp=stamp(clock, -301)
    )
    future = await _refused(
        caller, "future_timestamp", method="GET", path="/health", timestamp=stamp(clock, +301)
    )
    assert stale.startswith("The timestamp is stale: 301 s old")
    assert future.startswith("The timestamp is 301 s in the future")
    for offset in (-299, 299):
        assert (await caller.call("GET", "/health", timestamp=stamp(clock, offset))).status == 200


async def test_wrong_secret(sidecar: Sidecar, clock: FrozenClock) -> None:
    """A signature made with another secret is refused."""
    message = await _refused(
        sidecar.caller,
        "bad_signature",
        method="GET",
        path="/health",
        secret=b"wrong",
        timestamp=stamp(clock),
    )
    assert message.startswith("The signature does not match")


async def test_wrong_algorithm(sidecar: Sidecar, clock: FrozenClock) -> None:
    """A SHA512 signature with the SHA256 client's secret matches no client."""
    await _refused(
        sidecar.caller,
        "bad_signature",
        method="GET",
        path="/health",
        algorithm=Algorithm.SHA512,
        timestamp=stamp(clock),
    )


@pytest.mark.parametrize(
    "header", [signing.HEADER_TIMESTAMP, signing.HEADER_NONCE, signing.HEADER_SIGNATURE]
)
async def test_missing_header(sidecar: Sidecar, clock: FrozenClock, header: str) -> None:
    """Each of the three headers is required; the message names the missing one."""
    signed = signing.sign(SECRET, Algorithm.SHA256, "GET", "/health", timestamp=stamp(clock))
    del signed[header]
    message = await _refused(
        sidecar.caller, "missing_header", method="GET", path="/health", sign=False, headers=signed
    )
    assert message == f"The request is not signed: missing header(s) {header}."


async def test_tampered_body(sidecar: Sidecar, clock: FrozenClock) -> None:
    """A body changed after signing is refused and changes nothing."""
    body = {
        "record": {
            "type": "A",
            "domain": "example.com",
            "subdomain": "www",
            "values": ["192.0.2.1"],
        },
        "operation": "upsert",
    }
    signed_over = json.dumps({**body, "record": {**body["record"], "values": ["192.0.2.99"]}})
    await _refused(
        sidecar.caller,
        "bad_signature",
        method="POST",
        path="/records",
        body=body,
        signed_body=signed_over.encode(),
        timestamp=stamp(clock),
    )
    assert sidecar.runtime.accounts["memory"].provider.status()["recordSets"] == 0


async def test_tampered_path(sidecar: Sidecar, clock: FrozenClock) -> None:
    """A signature for one path does not authorise another."""
    await _refused(
        sidecar.caller,
        "bad_signature",
        method="DELETE",
        path="/records/A/example.com/www",
        signed_path="/records/A/example.com/test",
        timestamp=stamp(clock),
    )


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({signing.HEADER_TIMESTAMP: "30/12/2025 10:00"}, "malformed_timestamp"),
        ({signing.HEADER_TIMESTAMP: "2025-12-30T10:00:00"}, "malformed_timestamp"),  # no offset
        ({signing.HEADER_NONCE: "n" * 129}, "malformed_nonce"),
        ({signing.HEADER_SIGNATURE: "zz" * 32}, "malformed_signature"),
        ({signing.HEADER_SIGNATURE: "ab" * 20}, "malformed_signature"),
    ],
)
async def test_malformed_headers(
    sidecar: Sidecar, clock: FrozenClock, headers: dict[str, str], reason: str
) -> None:
    """A header that cannot be what the protocol says is refused with its own reason."""
    await _refused(
        sidecar.caller,
        reason,
        method="GET",
        path="/health",
        timestamp=stamp(clock),
        headers=headers,
    )


async def test_offsets_and_fractions_are_rfc3339(sidecar: Sidecar, clock: FrozenClock) -> None:
    """RFC 3339 with a numeric offset and nanosecond fractions is understood."""
    moment = datetime.fromtimestamp(clock.time(), UTC)
    shifted = moment.astimezone().strftime("%Y-%m-%dT%H:%M:%S.123456789%z")
    shifted = shifted[:-2] + ":" + shifted[-2:]
    assert (await sidecar.caller.call("GET", "/health", timestamp=shifted)).status == 200


async def test_auth_failures_are_counted_by_reason(sidecar: Sidecar, clock: FrozenClock) -> None:
    """The metric counts refusals by reason."""
    await sidecar.caller.call("GET", "/health", sign=False)
    await sidecar.caller.call("GET", "/health", secret=b"nope", timestamp=stamp(clock))
    metrics = sidecar.app[METRICS].render().decode()
    assert 'dns_sidecar_auth_failures_total{reason="missing_header"} 1.0' in metrics
    assert 'dns_sidecar_auth_failures_total{reason="bad_signature"} 1.0' in metrics


async def test_refused_client_is_explained(start_sidecar: StartSidecar, clock: FrozenClock) -> None:
    """A client whose settings cannot be had is refused with the reason, others still work."""
    runtime = make_runtime(
        {"memory": MemoryProvider()},
        clients=(Client("broken", _missing), Client.fixed("ok", Algorithm.SHA256, (SECRET,))),
    )
    caller = (await start_sidecar(runtime=runtime, clock=clock, secret=SECRET)).caller
    assert (await caller.call("GET", "/health", timestamp=stamp(clock))).status == 200
    message = await _refused(
        caller, "bad_signature", method="GET", path="/health", secret=b"x", timestamp=stamp(clock)
    )
    assert "Secret dns/x key k is missing" in message


async def test_no_secret_means_unsigned_requests(start_sidecar: StartSidecar) -> None:
    """With no client configured, requests need no signature (the loopback rule guards this)."""
    caller = (await start_sidecar(make_settings())).caller
    assert (await caller.call("GET", "/health", sign=False)).status == 200


def test_replay_cache_fails_closed_and_purges() -> None:
    """A full cache refuses new nonces until entries expire; expired entries are dropped."""
    cache = ReplayCache(capacity=2)
    assert cache.add("a", expires=110.0, now=100.0)
    assert cache.add("b", expires=120.0, now=100.0)
    assert not cache.add("c", expires=120.0, now=100.0)
    assert cache.seen("a", now=105.0)
    assert not cache.seen("c", now=105.0)
    assert cache.retry_after(now=100.0) == 10.0
    assert cache.add("c", expires=130.0, now=112.0)  # "a" has expired: room again
    assert not cache.seen("a", now=112.0)
    assert len(cache) == 2
    assert not cache.seen("b", now=1_000.0)
    assert len(cache) == 0


async def test_offsets_are_reported_rounded_up(sidecar: Sidecar, clock: FrozenClock) -> None:
    """A timestamp refused for being over 300 s off never reads "300 s": the offset is rounded
    up (timestamps have whole seconds, the clock does not)."""
    clock.advance(0.5)
    future = await _refused(
        sidecar.caller, "future_timestamp", method="GET", path="/health",
        timestamp=stamp(clock, +301),
    )  # fmt: skip
    stale = await _refused(
        sidecar.caller, "stale_timestamp", method="GET", path="/health",
        timestamp=stamp(clock, -301),
    )  # fmt: skip
    assert future == (
        "The timestamp is 301 s in the future, more than the 300 s allowed. Check the clocks of "
        "the operator and the sidecar."
    )
    assert stale.startswith("The timestamp is stale: 302 s old, more than the 300 s allowed.")


async def test_signature_of_the_other_algorithm_is_named(
    start_sidecar: StartSidecar, clock: FrozenClock
) -> None:
    """A SHA512 signature sent to a SHA256 client: the message says the length fits SHA512 and
    the client is configured for SHA256; a length that fits nothing lists what would."""
    runtime = make_runtime(
        {"memory": MemoryProvider()},
        clients=(Client.fixed("cloudflare", Algorithm.SHA256, (SECRET,)),),
    )
    caller = (await start_sidecar(runtime=runtime, clock=clock, secret=SECRET)).caller
    sha512 = await _refused(
        caller, "malformed_signature", method="GET", path="/health",
        algorithm=Algorithm.SHA512, timestamp=stamp(clock),
    )  # fmt: skip
    assert sha512 == (
        "Header X-DNS-Signature has 128 hex characters, the length of an HMAC-SHA512, but "
        "client 'cloudflare' is configured for SHA256: the operator and the sidecar must use "
        "the same algorithm (DNSClass spec.hmacAuth.algorithm)."
    )
    short = await _refused(
        caller, "malformed_signature", method="GET", path="/health", timestamp=stamp(clock),
        headers={signing.HEADER_SIGNATURE: "ab" * 20},
    )  # fmt: skip
    assert short == "Header X-DNS-Signature must be a hex HMAC of 64 characters (SHA256)."
