"""The connection to Redis or Valkey: every call bounded in time, counted, and failing closed.

A call that fails or times out becomes ``ProviderUnavailable`` (503, the operator retries) and
marks the connection down until a call succeeds again; redis-py reconnects by itself, so
service resumes when Redis returns. A supervised loop pings while idle, so ``/readyz`` and
``/health`` know without waiting for traffic.

Data loss: a sentinel key holds ``ID:TIME``, written once (``SET NX``) by the first replica to
find it missing. Every nonce write reads it in the same round trip; a sentinel that vanished or
changed means Redis lost what it held (restart without persistence, failover), and TIME is the
moment from which the nonces in Redis are complete: ``lost_at``.

Disruptions: ``disruptions`` counts the times this replica found its view of Redis broken (a
call or a ping that failed, a connection lost, a sentinel that changed). A write that happened
meanwhile may have been applied without its bookkeeping (the zone version it should have
moved), so the read caches are keyed on this count as well: they drop what they hold after any
disruption, also one seen only by the ping loop: a restart breaks the pooled connections, so the
first call after it fails; and where a connection outlives it (a proxy in between), the ping
loop still sees the server's ``run_id`` change.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from sidecar.clock import Clock
from sidecar.coordination.metrics import CoordinationMetrics
from sidecar.errors import ProviderUnavailable

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

log = logging.getLogger(__name__)

T = TypeVar("T")
SENTINEL = "sentinel"
# SET NX PX and the sentinel's GET in one command: one round trip, cheaper than a pipeline
SET_ONCE = """
local created = redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1])
return {created and 1 or 0, redis.call('GET', KEYS[2])}
"""


def display_url(url: str) -> str:
    """The URL without its password (user, host, port and database stay)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{parts.username}@{host}" if parts.username else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class RedisConnection:
    def __init__(
        self,
        url: str,
        *,
        prefix: str,
        timeout: float,
        clock: Clock,
        metrics: CoordinationMetrics,
        password_file: Path | None = None,
    ) -> None:
        self.url = display_url(url)
        self.prefix = prefix
        self.timeout = timeout
        self.metrics = metrics
        self.connected: bool | None = None  # None: not tried yet
        self.last_error: str | None = None
        self.lost_at: float | None = None  # nonces in Redis are complete from this moment on
        self.disruptions = 0  # failed calls and pings, changed sentinels: caches drop their data
        self._sentinel: str | None = None
        self._run_id: str | None = None  # the server's, from the ping loop: a restart changes it
        self._clock = clock
        self._client = _client(url, timeout, password_file)
        self._set_once = self.script(SET_ONCE)

    def script(self, source: str) -> AsyncScript:
        """A Lua script, sent by its digest (and loaded again when Redis lost it)."""
        return self._client.register_script(source)

    def key(self, name: str) -> str:
        return f"{self.prefix}:{name}"

    @property
    def epoch(self) -> str:
        """The sentinel's id: changes whenever Redis lost its data."""
        return (self._sentinel or "").partition(":")[0]

    async def call(self, operation: str, work: Callable[[Redis], Awaitable[T]]) -> T:
        """One bounded call; ``ProviderUnavailable`` when Redis fails or is too slow."""
        from redis.exceptions import RedisError  # noqa: PLC0415 - redis only when configured

        self.metrics.calls.labels(operation).inc()
        try:
            async with asyncio.timeout(self.timeout):
                result = await work(self._client)
        except (RedisError, OSError, TimeoutError) as err:
            self.metrics.errors.labels(operation).inc()
            self.disruptions += 1
            why = (
                f"no answer within {self.timeout:g} s"
                if isinstance(err, TimeoutError)
                else (str(err) or type(err).__name__)
            )
            if self.connected is not False or self.last_error != why:
                log.warning("Redis at %s failed (%s): %s", self.url, operation, why)
            self.connected = False
            self.last_error = why
            raise ProviderUnavailable(
                f"The shared state in Redis at {self.url} is unavailable ({why}); the request "
                "was not served. Retry when Redis is back.",
                details={"coordination": "redis", "operation": operation},
            ) from err
        if self.connected is not True:
            log.info("Redis at %s is reachable", self.url)
        self.connected = True
        return result

    async def set_once(self, name: str, ttl_ms: int) -> tuple[bool, float | None]:
        """``SET NX PX`` of ``name``, and the sentinel read in the same round trip: whether
        the key was new, and since when Redis holds every such key (``lost_at``)."""
        keys = [self.key(name), self.key(SENTINEL)]
        created, sentinel = await self.call(
            "set_once", lambda client: self._set_once(keys=keys, args=[ttl_ms], client=client)
        )
        await self.check_sentinel(sentinel)
        return bool(created), self.lost_at

    async def check_sentinel(self, found: Any) -> None:
        """``found`` is the sentinel as just read: adopt it when it vanished or changed."""
        if found is None or _text(found) != self._sentinel:
            await self.adopt_sentinel()

    async def adopt_sentinel(self) -> None:
        """Read the sentinel, writing a new one when it is missing (Redis lost its data)."""
        fresh = f"{secrets.token_hex(8)}:{self._clock.time():.3f}"

        async def run(client: Redis) -> list[Any]:
            async with client.pipeline(transaction=False) as pipe:
                pipe.set(self.key(SENTINEL), fresh, nx=True)
                pipe.get(self.key(SENTINEL))
                return list(await pipe.execute())

        _, found = await self.call("sentinel", run)
        value = _text(found) if found is not None else fresh
        if value == self._sentinel:
            return
        if self._sentinel is not None:
            self.disruptions += 1
            self.metrics.state_losses.inc()
            log.warning(
                "Redis at %s lost the shared state (its sentinel changed): requests signed "
                "before that moment are refused for one replay window",
                self.url,
            )
        self._sentinel = value
        try:
            self.lost_at = float(value.partition(":")[2])
        except ValueError:
            self.lost_at = self._clock.time()

    async def ping_forever(self, interval: float) -> None:
        """Keep ``connected`` current while idle, and notice a lost sentinel or a restart
        early."""
        while True:
            try:
                self.notice_restart(await self.call("ping", _ping))
                await self.adopt_sentinel()
            except ProviderUnavailable:
                pass  # already recorded; the next ping tries again
            await asyncio.sleep(interval)

    def notice_restart(self, run_id: str | None) -> None:
        """``run_id`` is the server's, as a ping just read it (``None``: not told). A new one
        means Redis restarted, with or without its data: a version move it had taken may be
        gone, so the read caches drop what they hold, also on a replica whose calls all
        succeeded (a connection that outlived the restart, as through a proxy)."""
        if run_id is None:
            return
        if self._run_id is not None and run_id != self._run_id:
            self.disruptions += 1
            log.warning(
                "Redis at %s restarted (its run_id changed): read caches drop what they hold",
                self.url,
            )
        self._run_id = run_id

    def status(self) -> dict[str, Any]:
        return {
            "backend": "redis",
            "url": self.url,
            "prefix": self.prefix,
            "connected": self.connected,
            "lastError": self.last_error,
            "stateSince": self.lost_at,
        }

    async def aclose(self) -> None:
        await self._client.aclose()


async def _ping(client: Redis) -> str | None:
    """The server's ``run_id`` (``INFO server``, one round trip); a plain ``PING`` where INFO
    is refused (a proxy, a renamed command), which tells liveness only."""
    from redis.exceptions import ResponseError  # noqa: PLC0415 - redis only when configured

    try:
        found = await client.info("server")
    except ResponseError:
        await client.ping()
        return None
    run_id = found.get("run_id")
    return str(run_id) if run_id else None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _client(url: str, timeout: float, password_file: Path | None) -> Redis:
    from redis.asyncio import Redis  # noqa: PLC0415 - redis only when configured
    from redis.asyncio.retry import Retry  # noqa: PLC0415
    from redis.backoff import NoBackoff  # noqa: PLC0415
    from redis.credentials import CredentialProvider  # noqa: PLC0415

    class PasswordFile(CredentialProvider):
        """The password read from its file at each new connection (a rotated Secret applies)."""

        def __init__(self, path: Path, username: str | None) -> None:
            self.path = path
            self.username = username

        def get_credentials(self) -> tuple[str] | tuple[str, str]:
            password = self.path.read_text(encoding="utf-8").strip()
            return (self.username, password) if self.username else (password,)

        async def get_credentials_async(self) -> tuple[str] | tuple[str, str]:
            return self.get_credentials()

    extra: dict[str, Any] = {}
    if password_file is not None:
        parts = urlsplit(url)
        extra["credential_provider"] = PasswordFile(password_file, parts.username)
        host = parts.netloc.rpartition("@")[2]  # redis-py takes credentials one way only
        url = urlunsplit((parts.scheme, host, parts.path, parts.query, ""))
    return Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),  # fail fast: the operator retries the whole request
        **extra,
    )
