"""Write locks shared by replicas: a lease in Redis per (zone, name, type).

``SET NX PX`` with a random token takes the lock; only the holder releases it (compare and
delete in one script); a holder that dies leaves it to expire. Requests of one process queue on
an in-process lock first, so only one of them at a time polls Redis. Waiting is bounded, in
the local queue and on Redis together: past it the write is refused with a retryable 503 that
names the lock. The lease outlasts the work: before its one write call the holder checks that
the lease still covers that call as a whole (its budget spend in Redis, then the provider call,
each bounded by its timeout). A release that Redis does not take is retried in the background
(``retries``) while the lease lasts, so a blip of Redis neither fails the answer nor blocks the
name for the whole lease.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from sidecar.coordination.connection import RedisConnection
from sidecar.coordination.locks import KeyedLocks
from sidecar.coordination.retries import Retries
from sidecar.errors import ProviderUnavailable

log = logging.getLogger(__name__)

RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
POLL_FIRST = 0.005
POLL_MAX = 0.1


class RedisLease:
    def __init__(self, name: str, expires: float, redis_timeout: float) -> None:
        self.name = name
        self.expires = expires  # event-loop time when the lease may have run out
        self.redis_timeout = redis_timeout

    def ensure(self, needed: float) -> None:
        """``needed`` is the provider call's own bound; the budget spend in Redis before it
        (up to one Redis call timeout) comes on top."""
        needed += self.redis_timeout
        left = self.expires - asyncio.get_running_loop().time()
        if left < needed:
            raise ProviderUnavailable(
                f"The write lock {self.name} has {max(left, 0):.1f} s of its lease left, less "
                f"than the {needed:g} s the change may take; nothing was sent. Retry.",
                details={"lock": self.name},
            )


class RedisLocks:
    def __init__(
        self, redis: RedisConnection, *, lease: float, wait: float, retries: Retries
    ) -> None:
        self._redis = redis
        self._retries = retries
        self.lease = lease
        self.wait = wait
        self._local = KeyedLocks()
        self._release_script = redis.script(RELEASE)

    @asynccontextmanager
    async def hold(self, key: tuple[str, str, str]) -> AsyncIterator[RedisLease]:
        """The lock, or ``ProviderUnavailable`` naming it once ``wait`` has passed: one
        deadline for the queue in this process and the polling of Redis together."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + self.wait
        name = self._redis.key("lock:" + ":".join(key))
        async with AsyncExitStack() as local:
            try:
                async with asyncio.timeout_at(deadline):
                    await local.enter_async_context(self._local.hold(key))
            except TimeoutError:
                raise self._still_held(name) from None
            token = secrets.token_hex(16)
            lease = await self._acquire(name, token, started, deadline)
            try:
                yield lease
            finally:
                await self._release(name, token, lease.expires)

    async def _acquire(self, name: str, token: str, started: float, deadline: float) -> RedisLease:
        loop = asyncio.get_running_loop()
        delay = POLL_FIRST
        lease_ms = round(self.lease * 1000)
        while True:
            sent = loop.time()
            taken = await self._redis.call(
                "lock", lambda client: client.set(name, token, nx=True, px=lease_ms)
            )
            if taken:
                if sent > started:
                    self._redis.metrics.lock_waits.observe(sent - started)
                return RedisLease(name, sent + self.lease, self._redis.timeout)
            if loop.time() + delay > deadline:
                raise self._still_held(name)
            await asyncio.sleep(delay)  # polling the lock, bounded by the deadline above
            delay = min(delay * 2, POLL_MAX)

    def _still_held(self, name: str) -> ProviderUnavailable:
        self._redis.metrics.lock_timeouts.inc()
        return ProviderUnavailable(
            f"The write lock {name} is still held (by another request or replica) "
            f"after {self.wait:g} s; nothing was sent. Retry.",
            details={"lock": name},
        )

    async def _release(self, name: str, token: str, expires: float) -> None:
        async def release() -> None:
            await self._redis.call(
                "unlock",
                lambda client: self._release_script(keys=[name], args=[token], client=client),
            )

        try:
            await release()
        except ProviderUnavailable:
            log.warning(
                "could not release the write lock %s; retrying until Redis takes it or its "
                "lease expires",
                name,
            )
            self._retries.add(f"unlock {name} {token}", release, until=expires)
