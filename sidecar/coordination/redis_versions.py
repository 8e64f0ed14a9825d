"""Zone versions in Redis: a write on any replica moves the zone's version, so every replica's
read cache sees it on its next read (one ``MGET`` per cached read, one ``INCR`` per write).

A version is ``SENTINEL:DISRUPTIONS:NUMBER``: the sentinel read in the same round trip (a Redis
that lost its data starts a new series), this replica's count of Redis disruptions (a cache
never outlives an outage it saw, in a call or in its ping loop), and the zone's counter. A move
that Redis does not take is handed to ``retries`` and made as soon as Redis is back: it never
fails the write whose batch the provider has already applied.
"""

from __future__ import annotations

import logging

from sidecar.coordination.connection import SENTINEL, RedisConnection
from sidecar.coordination.retries import Retries
from sidecar.errors import ProviderUnavailable

log = logging.getLogger(__name__)


class RedisVersions:
    def __init__(self, redis: RedisConnection, retries: Retries) -> None:
        self._redis = redis
        self._retries = retries

    async def current(self, zone: str) -> str:
        keys = [self._redis.key(f"zone:{zone}"), self._redis.key(SENTINEL)]
        found, sentinel = await self._redis.call("version", lambda c: c.mget(keys))
        await self._redis.check_sentinel(sentinel)
        number = found.decode() if isinstance(found, bytes) else "0"
        return f"{self._redis.epoch}:{self._redis.disruptions}:{number}"

    async def bump(self, zone: str) -> None:
        """Move the zone's version now, or as soon as Redis takes it; never raises."""
        key = self._redis.key(f"zone:{zone}")

        async def move() -> None:
            await self._redis.call("bump", lambda c: c.incr(key))

        try:
            await move()
        except ProviderUnavailable:
            log.warning(
                "could not move the read-cache version of zone %s in Redis; retrying until "
                "Redis takes it (read caches on every replica drop their data meanwhile)",
                zone,
            )
            self._retries.add(f"bump {key}", move)
