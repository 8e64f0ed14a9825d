"""Shared state on a real redis-server: nonces, locks, budgets, versions, loss and outages."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from sidecar.clock import FrozenClock
from sidecar.coordination.connection import RedisConnection, display_url
from sidecar.coordination.metrics import CoordinationMetrics
from sidecar.coordination.redis_budget import RedisBudget
from sidecar.coordination.redis_locks import RedisLocks
from sidecar.coordination.redis_versions import RedisVersions
from sidecar.coordination.replay import RedisNonces
from sidecar.coordination.retries import Retries
from sidecar.coordination.shared import RedisCoordination
from sidecar.errors import AuthFailed, ProviderUnavailable, RateLimited
from sidecar.providers.base import ZonePolicy
from sidecar.providers.cloudflare.auth import Auth
from sidecar.providers.cloudflare.client import CloudflareApi
from sidecar.providers.cloudflare.provider import CloudflareProvider
from sidecar.records import RecordKey, RecordSet
from sidecar.settings import RedisSettings, Settings
from tests.conftest import (
    Caller,
    RunningEmulator,
    StartManagement,
    StartSidecar,
    eventually,
    make_settings,
)
from tests.redis_server import RedisServer, command
from tests.service import REPO, clean_env

Connect = Callable[..., Awaitable[RedisConnection]]


@pytest.fixture
async def connect(redis_server: RedisServer) -> AsyncIterator[Connect]:
    """Connections to the test's redis-server, as separate replicas would hold them."""
    made: list[RedisConnection] = []

    async def make(
        clock: FrozenClock | None = None, url: str | None = None, **kw: object
    ) -> RedisConnection:
        conn = RedisConnection(
            url or redis_server.url,
            prefix="t",
            timeout=kw.pop("timeout", 1.0),  # type: ignore[arg-type]
            clock=clock or FrozenClock(),
            metrics=CoordinationMetrics(CollectorRegistry()),
            **kw,  # type: ignore[arg-type]
        )
        made.append(conn)
        return conn

    yield make
    for conn in made:
        await conn.aclose()


async def test_a_nonce_is_accepted_once_across_replicas(connect: Connect) -> None:
    """A nonce recorded through one connection is a replay through another."""
    clock = FrozenClock()
    now = clock.time()
    one, two = RedisNonces(await connect(clock)), RedisNonces(await connect(clock))
    await one.record("n-1", now, now + 300, now)
    with pytest.raises(AuthFailed) as refused:
        await two.record("n-1", now, now + 300, now)
    assert refused.value.reason == "replayed_nonce"
    await two.record("n-2", now, now + 300, now)


async def test_lost_state_refuses_requests_signed_before_it(
    connect: Connect, redis_server: RedisServer
) -> None:
    """After Redis lost its data, requests signed before the loss are refused for a window."""
    clock = FrozenClock()
    conn = await connect(clock)
    nonces = RedisNonces(conn)
    signed = clock.time()
    await nonces.record("before", signed, signed + 300, signed)
    assert command(redis_server.port, "FLUSHALL") == b"+OK\r\n"
    clock.advance(10)
    with pytest.raises(ProviderUnavailable) as refused:  # the replay Redis forgot
        await nonces.record("before", signed, signed + 300, clock.time())
    assert "was lost" in refused.value.message
    await nonces.record("after", clock.time(), clock.time() + 300, clock.time())
    assert conn.lost_at == clock.time()
    samples = conn.metrics.state_losses.collect()[0].samples  # prometheus_client's public API
    assert [s.value for s in samples if s.name.endswith("_total")] == [1.0]


async def test_an_unreachable_redis_fails_closed_and_recovers(
    connect: Connect, redis_server: RedisServer
) -> None:
    """Redis down: ProviderUnavailable and status says why; back: served again by itself."""
    clock = FrozenClock()
    conn = await connect(clock, timeout=0.5)
    nonces = RedisNonces(conn)
    now = clock.time()
    await nonces.record("a", now, now + 300, now)
    assert conn.status()["connected"] is True
    redis_server.kill()
    with pytest.raises(ProviderUnavailable) as refused:
        await nonces.record("b", now, now + 300, now)
    assert refused.value.details == {"coordination": "redis", "operation": "set_once"}
    status = conn.status()
    assert (status["connected"], status["url"]) == (False, redis_server.url)
    assert status["lastError"]
    redis_server.start()
    clock.advance(1)
    later = clock.time()
    await nonces.record("c", later, later + 300, later)
    assert conn.status()["connected"] is True


async def test_a_lock_is_bounded_and_released_only_by_its_holder(
    connect: Connect, redis_server: RedisServer
) -> None:
    """A held lock makes another holder give up with a 503 naming it; release is by token."""
    one = RedisLocks(await connect(), lease=5, wait=0.2, retries=Retries(1))
    two = RedisLocks(await connect(), lease=5, wait=0.2, retries=Retries(1))
    key = ("zone", "www.example.com", "A")
    async with one.hold(key):
        with pytest.raises(ProviderUnavailable) as refused:
            async with two.hold(key):
                pytest.fail("two holders of one lock")
        assert refused.value.details == {"lock": "t:lock:zone:www.example.com:A"}
    async with two.hold(key) as lease:
        lease.ensure(1.0)
        command(redis_server.port, "SET", "t:lock:zone:www.example.com:A", "someone-else")
    assert command(redis_server.port, "GET", "t:lock:zone:www.example.com:A") == (
        b"$12\r\nsomeone-else\r\n"
    )


async def test_waiting_in_the_local_queue_counts_against_the_lock_wait(
    connect: Connect,
) -> None:
    """Lock held; 5 more writers on the same replica: each gets the 503 naming the lock
    within the lock wait, none queues on the in-process lock unbounded."""
    locks = RedisLocks(await connect(), lease=30, wait=0.3, retries=Retries(1))
    key = ("z", "n", "A")
    held, release = asyncio.Event(), asyncio.Event()

    async def holder() -> None:
        async with locks.hold(key):
            held.set()
            await release.wait()

    async def writer() -> tuple[str, dict[str, Any], float]:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(ProviderUnavailable) as refused:
            async with locks.hold(key):
                pytest.fail("a second holder of a held lock")
        return refused.value.message.split(" is ")[0], refused.value.details, loop.time() - started

    task = asyncio.create_task(holder())
    await held.wait()
    try:
        async with asyncio.timeout(0.3 + 2.0):
            refused = await asyncio.gather(*(writer() for _ in range(5)))
    finally:
        release.set()
        await task
    assert [(why, details) for why, details, _ in refused] == [
        ("The write lock t:lock:z:n:A", {"lock": "t:lock:z:n:A"})
    ] * 5
    assert max(waited for _, _, waited in refused) < 0.3 + 0.5


async def test_a_lease_too_short_for_the_write_sends_nothing(
    connect: Connect, cf: RunningEmulator
) -> None:
    """An upsert whose lease covers the provider call but not the budget spend in Redis
    before it: 503 naming the lock, and Cloudflare sees no batch."""
    conn = await connect(timeout=1.0)
    api = CloudflareApi(
        "acct",
        lambda: Auth(token="cf-token"),
        RedisBudget(conn, "acct", 100, 300),
        base_url=cf.base_url,
        timeout=0.5,
    )
    locks = RedisLocks(
        conn, lease=1.2, wait=0.2, retries=Retries(1)
    )  # 1.2 s > 0.5 s, < 0.5 s + 1 s
    provider = CloudflareProvider(
        api, FrozenClock(), locks=locks, versions=RedisVersions(conn, Retries(1))
    )
    zone = ZonePolicy(name="example.com", zone_id="aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")
    record = RecordSet.build(RecordKey.parse("A", "example.com", "www"), ["192.0.2.1"], 300)
    try:
        with pytest.raises(ProviderUnavailable) as refused:
            await provider.upsert(zone, record)
    finally:
        await provider.aclose()
    assert refused.value.details == {
        "lock": "t:lock:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa:www.example.com:A"
    }
    assert cf.calls() == {"GET /zones/{zone_id}/dns_records": 1}
    assert cf.records("example.com") == []


async def test_the_budget_and_the_429_block_are_shared(connect: Connect) -> None:
    """Two replicas spend one budget; a 429 recorded by one blocks the other."""
    one = RedisBudget(await connect(), "acct", 3, 300)
    two = RedisBudget(await connect(), "acct", 3, 300)
    await one.spend()
    await two.spend()
    await one.spend()
    with pytest.raises(RateLimited) as spent:
        await two.spend()
    assert spent.value.retry_after == 300
    assert two.state().remaining == 0
    other = RedisBudget(await connect(), "other", 3, 300)
    await other.spend()
    assert await other.block(7) == 7
    blocked = RedisBudget(await connect(), "other", 3, 300)
    with pytest.raises(RateLimited) as refused:
        await blocked.spend()
    assert refused.value.retry_after == 7
    assert round(blocked.state().blocked_for) == 7


async def test_a_write_moves_the_zone_version_everywhere(connect: Connect) -> None:
    """A bump through one connection is seen by the others' next read."""
    one, two = (
        RedisVersions(await connect(), Retries(1)),
        RedisVersions(await connect(), Retries(1)),
    )
    before = await two.current("zone")
    await one.bump("zone")
    after = await two.current("zone")
    assert (before.rpartition(":")[2], after.rpartition(":")[2]) == ("0", "1")


async def test_the_password_comes_from_a_file(tmp_path: Path) -> None:
    """With DNS_SIDECAR_REDIS_PASSWORD_FILE the password is read from the file."""
    server = RedisServer(tmp_path, password="s3cret")
    server.start()
    (tmp_path / "password").write_text("s3cret\n")
    conn = RedisConnection(
        f"redis://:wrong@127.0.0.1:{server.port}/0",
        prefix="t",
        timeout=1.0,
        clock=FrozenClock(),
        metrics=CoordinationMetrics(CollectorRegistry()),
        password_file=tmp_path / "password",
    )
    try:
        assert await conn.call("ping", lambda client: client.ping()) is True
    finally:
        await conn.aclose()
        server.kill()


async def test_the_ping_loop_works_where_info_is_refused(redis_server: RedisServer) -> None:
    """A user without INFO (an ACL, a proxy) is pinged with PING, seen up and never disrupted."""
    command(redis_server.port, "ACL", "SETUSER", "pinger", "on", ">pw", "~*", "+@all", "-info")
    registry = CollectorRegistry()
    conn = RedisConnection(
        f"redis://pinger:pw@127.0.0.1:{redis_server.port}/0",
        prefix="t",
        timeout=1.0,
        clock=FrozenClock(),
        metrics=CoordinationMetrics(registry),
    )
    pinging = asyncio.create_task(conn.ping_forever(0.01))
    try:
        await eventually(
            lambda: (
                (
                    registry.get_sample_value(
                        "dns_sidecar_redis_calls_total", {"operation": "ping"}
                    )
                    or 0
                )
                >= 3
            )
        )
        assert (conn.connected, conn.disruptions) == (True, 0)
        assert registry.get_sample_value(
            "dns_sidecar_redis_errors_total", {"operation": "ping"}
        ) in (None, 0)
    finally:
        pinging.cancel()
        await conn.aclose()


def test_the_url_is_shown_without_its_password() -> None:
    """/status and logs show user, host, port and database, never the password."""
    assert display_url("redis://user:pw@redis.svc:6380/2") == "redis://user@redis.svc:6380/2"
    assert display_url("rediss://:pw@[::1]:6379") == "rediss://[::1]:6379"
    assert display_url("redis://localhost") == "redis://localhost"


def test_redis_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """DNS_SIDECAR_REDIS_* set the shared state; the prefix defaults to dns-sidecar."""
    assert Settings.from_env().redis.url is None
    assert Settings.from_env().redis.prefix == "dns-sidecar"
    monkeypatch.setenv("DNS_SIDECAR_REDIS_URL", "redis://:pw@redis:6379/0")
    monkeypatch.setenv("DNS_SIDECAR_REDIS_PASSWORD_FILE", "/run/secrets/redis")
    monkeypatch.setenv("DNS_SIDECAR_REDIS_PREFIX", "blue")
    redis = Settings.from_env().redis
    assert redis.url is not None
    assert (redis.url.get_secret_value(), str(redis.password_file), redis.prefix) == (
        "redis://:pw@redis:6379/0",
        "/run/secrets/redis",
        "blue",
    )
    assert "pw" not in repr(redis)


def test_without_a_redis_url_redis_is_never_imported() -> None:
    """Unset DNS_SIDECAR_REDIS_URL: the app is built and redis-py is not even imported."""
    code = (
        "import sys\n"
        "from sidecar.app import create_app\n"
        "from sidecar.settings import Settings\n"
        "create_app(Settings.from_env())\n"
        "print(sorted(m for m in sys.modules if m == 'redis' or m.startswith('redis.')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=clean_env(),
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout == "[]\n"


async def test_health_readiness_and_status_say_why_while_redis_is_down(
    start_sidecar: StartSidecar,
    start_management: StartManagement,
    redis_server: RedisServer,
    tmp_path: Path,
) -> None:
    """Redis down: /health and /readyz answer 503 naming it, /status and metrics show it;
    back: ready again by itself. /status also lists the supervised reload loops."""
    table = tmp_path / "routing.yaml"
    table.write_text(
        "version: 1\naccounts: [{name: m, provider: memory}]\nzones: [{name: ., account: m}]\n"
    )
    settings = make_settings(table={"config": table}).model_copy(
        update={
            "redis": RedisSettings(
                url=redis_server.url.replace("//", "//:hunter2@"), ping_interval=0.05
            )
        }
    )
    redis_server.kill()
    redis_server.password = "hunter2"
    redis_server.start()
    sidecar = await start_sidecar(settings)
    management = await start_management(sidecar)

    async def status() -> dict[str, Any]:
        return (await management.call("GET", "/status")).body  # type: ignore[no-any-return]

    await eventually(lambda: _ready(management))
    shown = (await status())["coordination"]
    assert (shown["backend"], shown["url"], shown["connected"]) == (
        "redis",
        redis_server.url,
        True,
    )
    running = {"running": True, "restarts": 0, "lastError": None}
    assert shown["loops"] == {"ping": running, "delayed writes": running}
    assert shown["delayedWrites"] == 0
    assert sorted((await status())["loops"]) == ["recheck_forever", "sweeps", "watch_forever"]

    redis_server.kill()
    await eventually(lambda: _not_ready(management))
    ready = await management.call("GET", "/readyz")
    assert ready.body["status"] == "unavailable"
    assert redis_server.url in ready.body["reason"]
    health = await sidecar.caller.call("GET", "/health")
    assert (health.status, health.body["status"]) == (503, "unhealthy")
    assert f"Unhealthy: shared state in Redis at {redis_server.url}" in health.body["message"]
    shown = (await status())["coordination"]
    assert (shown["connected"], bool(shown["lastError"])) == (False, True)
    metrics = (await management.call("GET", "/metrics")).body
    assert 'dns_sidecar_redis_errors_total{operation="ping"}' in metrics
    assert "hunter2" not in json.dumps(await status())

    redis_server.start()
    await eventually(lambda: _ready(management))


async def _ready(management: Caller) -> bool:
    return (await management.call("GET", "/readyz")).status == 200


async def _not_ready(management: Caller) -> bool:
    return (await management.call("GET", "/readyz")).status == 503


async def test_no_write_is_sent_without_its_lock(
    start_sidecar: StartSidecar,
    redis_server: RedisServer,
    cf: RunningEmulator,
    tmp_path: Path,
) -> None:
    """An unsigned write (no nonce to record) while Redis is down: 503, and no API call."""
    table = tmp_path / "routing.yaml"
    table.write_text(
        "version: 1\naccounts:\n  - name: cf\n    provider: cloudflare\n"
        f"    apiToken: {{value: cf-token}}\n    baseUrl: {cf.base_url}\n"
        "zones:\n  - {name: example.com, account: cf, zoneId: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa}\n"
    )
    settings = make_settings(table={"config": table}).model_copy(
        update={"redis": RedisSettings(url=redis_server.url)}
    )
    sidecar = await start_sidecar(settings)
    assert (await sidecar.caller.upsert("A", "example.com", "w", ["192.0.2.1"])).status == 200
    redis_server.kill()
    cf.emulator.stats.clear()
    refused = await sidecar.caller.upsert("A", "example.com", "w", ["192.0.2.2"])
    assert (refused.status, refused.code) == (503, "PROVIDER_UNAVAILABLE")
    assert refused.body["error"]["details"] == {"coordination": "redis", "operation": "lock"}
    assert cf.calls() == {}
    assert [r["content"] for r in cf.records("example.com")] == ["192.0.2.1"]


@pytest.mark.parametrize("redis_server", ["appendonly"], indirect=True)
async def test_a_version_move_redis_does_not_take_is_retried(
    connect: Connect, redis_server: RedisServer
) -> None:
    """A bump during an outage does not raise, lands once Redis is back; versions moved."""
    retries = Retries(0.05)
    writer = RedisVersions(await connect(), retries)
    reader = RedisVersions(await connect(), Retries(1))
    await writer.bump("zone")
    before = await reader.current("zone")
    redis_server.kill()
    await writer.bump("zone")  # answered, not raised
    assert len(retries) == 1
    with pytest.raises(ProviderUnavailable):
        await reader.current("zone")
    assert await retries.run_once() is False  # still down: kept
    redis_server.start()
    assert await retries.run_once() is True
    assert len(retries) == 0
    assert command(redis_server.port, "GET", "t:zone:zone") == b"$1\r\n2\r\n"  # kept, then moved
    after = await reader.current("zone")
    assert after.split(":")[0] == before.split(":")[0]  # Redis kept its data: the same sentinel
    assert after.split(":")[1:] != before.split(":")[1:]


async def test_a_delayed_version_move_is_tried_once_more_at_shutdown(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A version move still pending when the replica stops lands if Redis is back, else it is
    named in a warning; the shutdown waits one Redis timeout at most."""
    settings = RedisSettings(url=redis_server.url, timeout=0.5, ping_interval=60)
    shared = RedisCoordination(
        settings, provider_timeout=1, clock=FrozenClock(), registry=CollectorRegistry()
    )
    redis_server.kill()
    await shared.versions.bump("zone")
    assert len(shared.retries) == 1
    redis_server.start()
    await shared.aclose()  # never started: only the shutdown can land it
    assert command(redis_server.port, "GET", "dns-sidecar:zone:zone") == b"$1\r\n1\r\n"

    stuck = RedisCoordination(
        settings, provider_timeout=1, clock=FrozenClock(), registry=CollectorRegistry()
    )
    redis_server.kill()
    await stuck.versions.bump("other")
    started = asyncio.get_running_loop().time()
    with caplog.at_level(logging.WARNING, "sidecar.coordination.retries"):
        await stuck.aclose()
    assert asyncio.get_running_loop().time() - started < 0.5 + 0.5
    warning = (
        "shutting down with 1 delayed Redis write(s) Redis did not take: bump "
        "dns-sidecar:zone:other; a replica that saw no Redis failure may serve a read-cached "
        "listing of those zones until its readCacheSeconds run out"
    )
    assert [r.getMessage() for r in caplog.records if "shutting down" in r.getMessage()] == [
        warning
    ]


async def test_the_retry_loop_runs_when_a_write_is_handed_over() -> None:
    """Handed-over writes are retried until they succeed; an expired one is never tried."""
    retries = Retries(0.05)
    attempts: list[int] = []
    done = asyncio.Event()

    async def flaky() -> None:
        attempts.append(len(attempts))
        if len(attempts) < 3:
            raise ProviderUnavailable("down")
        done.set()

    async def never() -> None:
        raise AssertionError("an expired write is not tried")

    loop = asyncio.get_running_loop()
    retries.add("late", never, until=loop.time() - 1)
    runner = asyncio.create_task(retries.run_forever())
    retries.add("flaky", flaky)
    await asyncio.wait_for(done.wait(), 5)
    await eventually(lambda: len(retries) == 0)
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner
    assert attempts == [0, 1, 2]


async def test_a_lock_release_redis_does_not_take_is_retried_while_the_lease_lasts(
    connect: Connect, redis_server: RedisServer
) -> None:
    """A release Redis does not take raises nothing and is retried in the background."""
    retries = Retries(0.05)
    locks = RedisLocks(await connect(), lease=30, wait=0.2, retries=retries)
    async with locks.hold(("z", "n.example.com", "A")):
        redis_server.kill()
    assert len(retries) == 1
    redis_server.start()
    assert await retries.run_once() is True


async def test_a_429_is_kept_by_the_replica_when_redis_cannot_share_it(
    connect: Connect, redis_server: RedisServer
) -> None:
    """A 429 while Redis is down: the wait is answered and this replica keeps the block."""
    budget = RedisBudget(await connect(), "acct", 10, 300)
    redis_server.kill()
    assert await budget.block(9) == 9
    with pytest.raises(RateLimited) as refused:
        await budget.spend()
    assert refused.value.retry_after == 9
