"""Several real ``dns-sidecar serve`` processes sharing one redis-server and one Cloudflare
emulator act as one process (SPEC section 7)."""

from __future__ import annotations

import asyncio
import itertools
import signal
import subprocess
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest

from sidecar.auth.signing import format_timestamp
from tests.conftest import SECRET, Caller, ProtocolReply, RunningEmulator, eventually
from tests.redis_server import Partition, RedisServer, Relay, command
from tests.service import REPO, Service, clean_env, free_port
from tests.service import command as sidecar_command

COM = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
DOMAIN = "example.com"


@dataclass
class Replica:
    service: Service
    caller: Caller

    def kill(self) -> None:
        self.service.process.send_signal(signal.SIGKILL)
        self.service.process.wait()


StartReplicas = Callable[..., Awaitable[list[Replica]]]


def routing_table(cf: RunningEmulator, account_extra: str = "") -> str:
    return f"""
version: 1
clients:
  - name: operator
    algorithm: SHA256
    secrets: [{{value: "{SECRET.decode()}"}}]
accounts:
  - name: cf
    provider: cloudflare
    apiToken: {{value: cf-token}}
    baseUrl: {cf.base_url}
{account_extra}
zones:
  - name: {DOMAIN}
    account: cf
    zoneId: {COM}
"""


async def _ready(session: aiohttp.ClientSession, service: Service, seconds: float = 30) -> None:
    async def ready() -> bool:
        if service.process.poll() is not None:
            raise RuntimeError(f"dns-sidecar exited: {service.logged()}")
        try:
            async with session.get(service.management_url + "/readyz") as reply:
                return reply.status == 200
        except aiohttp.ClientError:
            return False

    await eventually(ready, seconds)


@pytest.fixture
async def start_replicas(
    session: aiohttp.ClientSession, cf: RunningEmulator, redis_server: RedisServer
) -> AsyncIterator[StartReplicas]:
    """Start N sidecars on one routing table, one Redis and the emulator; all stopped after."""
    started: list[Service] = []
    with tempfile.TemporaryDirectory(prefix="dns-sidecar-replicas-") as tmp:
        directory = Path(tmp)
        # Redis has served this deployment for a while (a new sentinel means "state lost now")
        command(redis_server.port, "SET", "dns-sidecar:sentinel", "earlier:0", "NX")

        async def start(
            count: int, *, account_extra: str = "", env: dict[str, str] | None = None
        ) -> list[Replica]:
            table = directory / "routing.yaml"
            table.write_text(routing_table(cf, account_extra))
            replicas = []
            for index in range(count):
                port, management = free_port(), free_port()
                log = directory / f"replica-{len(started)}.log"
                with log.open("w") as sink:
                    process = subprocess.Popen(  # noqa: ASYNC220 - readiness is awaited below
                        sidecar_command(
                            "serve",
                            "--config",
                            str(table),
                            "--port",
                            str(port),
                            "--management-port",
                            str(management),
                        ),
                        env=clean_env({"DNS_SIDECAR_REDIS_URL": redis_server.url, **(env or {})}),
                        cwd=REPO,
                        stdin=subprocess.DEVNULL,
                        stdout=sink,
                        stderr=sink,
                    )
                service = Service(process, port, management, log)  # type: ignore[arg-type]
                started.append(service)
                replicas.append(Replica(service, Caller(session, service.url, SECRET)))
                del index
            await asyncio.gather(*(_ready(session, r.service) for r in replicas))
            return replicas

        yield start
        for service in started:
            if service.process.poll() is None:
                service.process.kill()
                service.process.wait()


def contents(cf: RunningEmulator, fqdn: str, kind: str = "A") -> list[str]:
    return sorted(
        r["content"] for r in cf.records(DOMAIN) if r["name"] == fqdn and r["type"] == kind
    )


async def test_simultaneous_upserts_end_in_one_requested_set(
    start_replicas: StartReplicas, cf: RunningEmulator
) -> None:
    """100 rounds of concurrent upserts through 3 replicas: one requested set, never a merge."""
    replicas = await start_replicas(3)
    for round_ in range(100):
        wanted = [
            sorted({f"198.51.100.{(round_ + i) % 250 + 1}" for i in range(2)}),
            sorted({f"203.0.113.{(round_ * 3 + i) % 250 + 1}" for i in range(3)}),
            [f"192.0.2.{round_ % 250 + 1}"],
        ]
        replies = await asyncio.gather(
            *(
                replica.caller.upsert("A", DOMAIN, "race", values)
                for replica, values in zip(replicas, wanted, strict=True)
            )
        )
        assert [reply.status for reply in replies] == [200, 200, 200], replies
        assert contents(cf, "race.example.com") in wanted, f"round {round_}"


async def test_a_request_replayed_on_another_replica_is_refused(
    start_replicas: StartReplicas,
) -> None:
    """A signed request accepted by one replica is a replay on another: 401 AUTH_FAILED."""
    one, two = await start_replicas(2)
    stamp = format_timestamp(datetime.now(UTC))
    body = {
        "record": {"type": "A", "domain": DOMAIN, "subdomain": "r", "values": ["192.0.2.1"]},
        "operation": "upsert",
    }
    first = await one.caller.call("POST", "/records", body, timestamp=stamp, nonce="once")
    again = await two.caller.call("POST", "/records", body, timestamp=stamp, nonce="once")
    assert first.status == 200
    assert (again.status, again.code, again.body["error"]["details"]) == (
        401,
        "AUTH_FAILED",
        {"reason": "replayed_nonce"},
    )


async def test_the_account_budget_is_shared(
    start_replicas: StartReplicas, cf: RunningEmulator
) -> None:
    """A budget of 10 with 30 writes over 3 replicas: at most 10 API calls, the rest 429."""
    replicas = await start_replicas(
        3, account_extra="    rateLimit: {requests: 10, perSeconds: 300}"
    )
    replies = [  # one after another: each write's read and batch both fit, or neither
        await replicas[i % 3].caller.upsert("A", DOMAIN, f"b{i}", [f"192.0.2.{i + 1}"])
        for i in range(30)
    ]
    assert cf.total() <= 10
    assert [reply.status for reply in replies] == [200] * 5 + [429] * 25, replies
    limited = [reply for reply in replies if reply.status == 429]
    assert {reply.code for reply in limited} == {"RATE_LIMITED"}
    assert all(int(reply.headers["Retry-After"]) >= 1 for reply in limited)


async def test_a_429_on_one_replica_blocks_the_others(
    start_replicas: StartReplicas, cf: RunningEmulator
) -> None:
    """Cloudflare's 429 seen by one replica fails the others fast, without API calls."""
    one, two, three = await start_replicas(3)
    cf.emulator.fail(429, retry_after=30)
    hit = await one.caller.upsert("A", DOMAIN, "x", ["192.0.2.1"])
    assert (hit.status, hit.code, hit.headers["Retry-After"]) == (429, "RATE_LIMITED", "30")
    cf.emulator.stats.clear()
    others = [await r.caller.upsert("A", DOMAIN, "y", ["192.0.2.2"]) for r in (two, three)]
    assert [(r.status, r.code) for r in others] == [(429, "RATE_LIMITED")] * 2
    assert all(1 <= int(r.headers["Retry-After"]) <= 30 for r in others)
    assert cf.calls() == {}


async def test_a_write_invalidates_the_read_cache_on_every_replica(
    start_replicas: StartReplicas,
) -> None:
    """With readCacheSeconds on, a write through A is seen at once by a GET through B."""
    one, two = await start_replicas(2, account_extra="    readCacheSeconds: 300")
    assert (await two.caller.call("GET", "/records/A/example.com/cached")).status == 404
    assert (await one.caller.upsert("A", DOMAIN, "cached", ["192.0.2.5"])).status == 200
    seen = await two.caller.call("GET", "/records/A/example.com/cached")
    assert (seen.status, seen.body["record"]["values"]) == (200, ["192.0.2.5"])
    assert (await two.caller.upsert("A", DOMAIN, "cached", ["192.0.2.6"])).status == 200
    seen = await one.caller.call("GET", "/records/A/example.com/cached")
    assert (seen.status, seen.body["record"]["values"]) == (200, ["192.0.2.6"])


@dataclass
class Sent:
    at: float
    replica: int
    name: str
    reply: ProtocolReply


async def test_redis_killed_under_traffic_fails_closed_and_recovers(
    start_replicas: StartReplicas, cf: RunningEmulator, redis_server: RedisServer
) -> None:
    """Redis killed under traffic: nothing served unchecked, no false ack; back within seconds."""
    replicas = await start_replicas(2, env={"DNS_SIDECAR_REDIS_PING_INTERVAL": "0.2"})
    loop = asyncio.get_running_loop()
    sent: list[Sent] = []
    stop = asyncio.Event()
    names = itertools.count()
    accepted_before: list[tuple[str, str, dict[str, object]]] = []

    async def traffic(index: int) -> None:
        caller = replicas[index].caller
        while not stop.is_set():
            name = f"t{next(names)}"
            at = loop.time()
            reply = await caller.upsert("A", DOMAIN, name, ["192.0.2.9"])
            sent.append(Sent(at, index, name, reply))

    workers = [asyncio.create_task(traffic(i % 2)) for i in range(4)]
    await eventually(lambda: sum(s.reply.status == 200 for s in sent) >= 20)
    stamp = format_timestamp(datetime.now(UTC))
    body = {
        "record": {"type": "A", "domain": DOMAIN, "subdomain": "pre", "values": ["192.0.2.3"]},
        "operation": "upsert",
    }
    before = await replicas[0].caller.call("POST", "/records", body, timestamp=stamp, nonce="pre")
    assert before.status == 200
    accepted_before.append((stamp, "pre", body))

    redis_server.kill()
    killed = loop.time()
    await eventually(lambda: sum(s.at > killed and s.reply.status == 503 for s in sent) >= 20)
    ready = [await r.caller.session.get(r.service.management_url + "/readyz") for r in replicas]
    assert [r.status for r in ready] == [503, 503]
    restarting = loop.time()
    redis_server.start()
    back = loop.time()
    await eventually(lambda: any(s.at > back and s.reply.status == 200 for s in sent), 10)
    resumed = min(s.at for s in sent if s.at > back and s.reply.status == 200)
    stop.set()
    await asyncio.gather(*workers)

    during = [s for s in sent if killed < s.at < restarting]
    assert {(s.reply.status, s.reply.code) for s in during} == {(503, "PROVIDER_UNAVAILABLE")}
    assert resumed - back < 5
    assert {s.reply.status for s in sent} <= {200, 503}
    acknowledged = {s.name for s in sent if s.reply.status == 200}
    present = {r["name"].removesuffix(".example.com") for r in cf.records(DOMAIN)}
    assert acknowledged <= present  # no acknowledged write that did not happen
    replay = await replicas[1].caller.call("POST", "/records", body, timestamp=stamp, nonce="pre")
    assert replay.status in {401, 503}  # Redis forgot the nonce; never served again


async def test_a_killed_lock_holder_frees_the_name_after_its_lease(
    start_replicas: StartReplicas, cf: RunningEmulator, redis_server: RedisServer
) -> None:
    """A replica SIGKILLed while holding a write lock: the name is writable after the lease."""
    one, two = await start_replicas(
        2,
        env={
            "DNS_SIDECAR_PROVIDER_TIMEOUT": "1",
            "DNS_SIDECAR_REDIS_TIMEOUT": "0.5",
            "DNS_SIDECAR_REDIS_LOCK_LEASE": "4",
        },
    )
    lock = f"dns-sidecar:lock:{COM}:held.example.com:A"
    cf.emulator.latency = 30  # the holder's read hangs, with the lock held
    stuck = asyncio.create_task(one.caller.upsert("A", DOMAIN, "held", ["192.0.2.1"]))
    await eventually(lambda: command(redis_server.port, "EXISTS", lock) == b":1\r\n")
    one.kill()
    cf.emulator.latency = 0
    ttl = int(command(redis_server.port, "PTTL", lock)[1:])
    assert 0 < ttl <= 4000
    reply = await two.caller.upsert("A", DOMAIN, "held", ["192.0.2.2"])
    assert reply.status == 200
    assert contents(cf, "held.example.com") == ["192.0.2.2"]
    with pytest.raises(aiohttp.ClientError):
        await stuck


# --- Redis dies while a batch is at the provider (issue 25) ---------------------------------

PERSISTENT = pytest.mark.parametrize("redis_server", ["appendonly"], indirect=True)
CACHED = "    readCacheSeconds: 3600"


async def _get(replica: Replica, sub: str) -> list[str] | int | None:
    """The values a GET shows (``None``: 404), or the status of a 503 (Redis not back yet)."""
    reply = await replica.caller.call("GET", f"/records/A/{DOMAIN}/{sub}")
    if reply.status in (404, 503):
        return None if reply.status == 404 else reply.status
    assert reply.status == 200, reply
    return list(reply.body["record"]["values"])


async def _kill_redis_under_a_batch(
    writer: Replica, cf: RunningEmulator, redis_server: RedisServer, sub: str, values: list[str]
) -> ProtocolReply:
    """An upsert through ``writer`` whose batch the emulator applies and then holds for a
    second; Redis is SIGKILLed in that second. The answer, once the batch returns."""
    cf.emulator.delay(1.0, path="/batch")
    answer = asyncio.create_task(writer.caller.upsert("A", DOMAIN, sub, values))
    await eventually(lambda: contents(cf, f"{sub}.example.com") == values)  # applied, held
    redis_server.kill()
    assert not answer.done()
    return await answer


async def _seen_within(replica: Replica, sub: str, want: list[str], bound: float) -> float:
    """Seconds until a GET through ``replica`` shows ``want``; fails past ``bound``."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    seen: list[list[str] | int | None] = []

    async def fresh() -> bool:
        seen.append(await _get(replica, sub))
        return seen[-1] == want

    try:
        await eventually(fresh, bound)
    except AssertionError:
        raise AssertionError(f"still {seen[-1]} after {bound} s, want {want}") from None
    return loop.time() - start


@PERSISTENT
async def test_a_batch_applied_before_redis_died_is_answered_as_applied(
    start_replicas: StartReplicas, cf: RunningEmulator, redis_server: RedisServer
) -> None:
    """Redis killed while an applied batch is held: 200 with the outcome, not "not served"."""
    (writer,) = await start_replicas(1, account_extra=CACHED)
    assert (await writer.caller.upsert("A", DOMAIN, "kept", ["192.0.2.1"])).status == 200
    reply = await _kill_redis_under_a_batch(writer, cf, redis_server, "kept", ["192.0.2.2"])
    assert (reply.status, reply.body) == (
        200,
        {
            "success": True,
            "record": {
                "type": "A",
                "domain": DOMAIN,
                "subdomain": "kept",
                "fqdn": "kept.example.com",
                "values": ["192.0.2.2"],
                "ttl": 300,
            },
            "message": "Record updated successfully",
        },
    )


@PERSISTENT
async def test_a_reader_drops_its_cache_when_its_own_call_fails(
    start_replicas: StartReplicas, cf: RunningEmulator, redis_server: RedisServer
) -> None:
    """Redis restarted with its data: an idle reader's first call fails, its cache goes."""
    (writer,) = await start_replicas(1, account_extra=CACHED)
    (reader,) = await start_replicas(
        1, account_extra=CACHED, env={"DNS_SIDECAR_REDIS_PING_INTERVAL": "60"}
    )
    assert (await writer.caller.upsert("A", DOMAIN, "moved", ["192.0.2.1"])).status == 200
    assert await _get(reader, "moved") == ["192.0.2.1"]  # now cached for an hour
    await _kill_redis_under_a_batch(writer, cf, redis_server, "moved", ["192.0.2.2"])
    writer.kill()  # its retried version move dies with it
    redis_server.start()
    await _seen_within(reader, "moved", ["192.0.2.2"], bound=3.0)


async def test_a_lost_version_move_is_retried_until_redis_takes_it(
    start_replicas: StartReplicas, cf: RunningEmulator, redis_server: RedisServer
) -> None:
    """Only the writer is cut off from Redis: its retried version move ends reader caches."""
    partition = Partition(redis_server.port)
    await partition.mend()
    (writer,) = await start_replicas(
        1,
        account_extra=CACHED,
        env={
            "DNS_SIDECAR_REDIS_URL": partition.url,
            "DNS_SIDECAR_REDIS_PING_INTERVAL": "1",
            "DNS_SIDECAR_REDIS_TIMEOUT": "2",
        },
    )
    (reader,) = await start_replicas(
        1, account_extra=CACHED, env={"DNS_SIDECAR_REDIS_PING_INTERVAL": "60"}
    )
    try:
        assert (await writer.caller.upsert("A", DOMAIN, "cut", ["192.0.2.1"])).status == 200
        assert await _get(reader, "cut") == ["192.0.2.1"]  # now cached for an hour
        cf.emulator.delay(1.0, path="/batch")
        answer = asyncio.create_task(writer.caller.upsert("A", DOMAIN, "cut", ["192.0.2.2"]))
        await eventually(lambda: contents(cf, "cut.example.com") == ["192.0.2.2"])
        await partition.cut()
        assert (await answer).status == 200
        assert await _get(reader, "cut") == ["192.0.2.1"]  # it cannot know yet
        await partition.mend()
        await _seen_within(reader, "cut", ["192.0.2.2"], bound=1 + 2)  # writer's ping + timeout
    finally:
        await partition.cut()


@PERSISTENT
async def test_a_reader_learns_of_an_outage_through_its_ping_loop(
    start_replicas: StartReplicas, cf: RunningEmulator, redis_server: RedisServer
) -> None:
    """The writer dies before its retry; the idle reader's ping loop drops its cache in time."""
    timing = {"DNS_SIDECAR_REDIS_PING_INTERVAL": "1", "DNS_SIDECAR_REDIS_TIMEOUT": "2"}
    writer, reader = await start_replicas(2, account_extra=CACHED, env=timing)
    assert (await writer.caller.upsert("A", DOMAIN, "pinged", ["192.0.2.1"])).status == 200
    assert await _get(reader, "pinged") == ["192.0.2.1"]
    await _kill_redis_under_a_batch(writer, cf, redis_server, "pinged", ["192.0.2.2"])
    writer.kill()  # its retried version move dies with it
    redis_server.start()
    await _seen_within(reader, "pinged", ["192.0.2.2"], bound=1 + 2)


@PERSISTENT
async def test_a_reader_whose_connection_outlives_a_restart_still_drops_its_cache(
    start_replicas: StartReplicas, cf: RunningEmulator, redis_server: RedisServer
) -> None:
    """Redis restarts with its data behind a proxy the reader never sees fail: its ping
    loop finds the new run_id and drops the cache within ping interval + timeout."""
    relay = Relay(redis_server.port)
    await relay.start()
    (writer,) = await start_replicas(1, account_extra=CACHED)
    (reader,) = await start_replicas(
        1,
        account_extra=CACHED,
        env={
            "DNS_SIDECAR_REDIS_URL": relay.url,
            "DNS_SIDECAR_REDIS_PING_INTERVAL": "2",
            "DNS_SIDECAR_REDIS_TIMEOUT": "5",  # longer than the outage: no call of it fails
        },
    )
    try:
        assert (await writer.caller.upsert("A", DOMAIN, "relayed", ["192.0.2.1"])).status == 200
        assert await _get(reader, "relayed") == ["192.0.2.1"]  # now cached for an hour
        relay.hold()  # the proxy queues the reader's calls while Redis is away
        await _kill_redis_under_a_batch(writer, cf, redis_server, "relayed", ["192.0.2.2"])
        writer.kill()  # its retried version move dies with it
        redis_server.start()
        relay.resume()
        await _seen_within(reader, "relayed", ["192.0.2.2"], bound=2 + 5)
        assert "failed" not in reader.service.logged()  # it saw no call fail
        assert "restarted (its run_id changed)" in reader.service.logged()
    finally:
        await relay.close()
