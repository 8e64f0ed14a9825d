"""Zone versions in Redis: a write on any replica moves the zone's version, so every replica's
read cache sees it on its next read (one ``GET`` per cached read, one ``INCR`` per write)."""

from __future__ import annotations

from sidecar.coordination.connection import RedisConnection


class RedisVersions:
    def __init__(self, redis: RedisConnection) -> None:
        self._redis = redis

    async def current(self, zone: str) -> str:
        found = await self._redis.call("version", lambda c: c.get(self._redis.key(f"zone:{zone}")))
        number = found.decode() if isinstance(found, bytes) else "0"
        return f"{self._redis.epoch}:{number}"  # a new epoch after Redis lost its data

    async def bump(self, zone: str) -> None:
        await self._redis.call("bump", lambda c: c.incr(self._redis.key(f"zone:{zone}")))
