"""Turns shared by replicas: one replica does a periodic job (a sweep) per interval.

A turn is a lease in Redis (``SET NX PX`` with a random token, renewed only by its holder in one
script): the holder keeps its turn as long as it keeps renewing, so the same replica sweeps
interval after interval (its memory of since when each orphan stands stays whole), and when it
dies another replica takes the turn once the lease runs out.
"""

from __future__ import annotations

import secrets

from sidecar.coordination.connection import RedisConnection

TAKE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 1
end
return 0
"""


class RedisTurns:
    def __init__(self, redis: RedisConnection) -> None:
        self._redis = redis
        self._token = secrets.token_hex(16)  # this replica
        self._take = redis.script(TAKE)

    async def take(self, name: str, lease: float) -> bool:
        """Whether this replica has the turn ``name`` for the next ``lease`` seconds
        (``ProviderUnavailable`` when Redis cannot say: then nobody should act)."""
        key = self._redis.key(f"turn:{name}")
        args: list[str | int] = [self._token, max(1, round(lease * 1000))]
        taken = await self._redis.call(
            "turn", lambda client: self._take(keys=[key], args=args, client=client)
        )
        return bool(taken)
