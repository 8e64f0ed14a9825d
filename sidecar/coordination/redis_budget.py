"""An account's request budget shared by replicas: one sliding window in Redis, and the block
after Cloudflare's 429, checked and spent in one script (atomic), on Redis's clock.

The block is also kept in this process: a 429 is answered as a 429 when Redis cannot record
it, and this replica sends nothing into the block either way."""

from __future__ import annotations

import asyncio
import logging
import secrets
from itertools import count

from sidecar.coordination.base import BudgetState
from sidecar.coordination.budget import blocked, spent
from sidecar.coordination.connection import RedisConnection
from sidecar.errors import ProviderUnavailable

log = logging.getLogger(__name__)

SPEND = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local block = redis.call('PTTL', KEYS[2])
if block > 0 then return {1, block, 0} end
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local used = redis.call('ZCARD', KEYS[1])
if used >= tonumber(ARGV[1]) then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {2, tonumber(oldest[2]) + window - now, used}
end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], window)
return {0, 0, used + 1}
"""

BLOCK = """
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
end
return 1
"""


class RedisBudget:
    def __init__(
        self, redis: RedisConnection, account: str, requests: int, per_seconds: float
    ) -> None:
        self._redis = redis
        self.account = account
        self.requests = requests
        self.per_seconds = per_seconds
        self._window = redis.key(f"budget:{account}")
        self._block = redis.key(f"blocked:{account}")
        self._ids = count()
        self._me = secrets.token_hex(6)
        self._remaining = requests
        self._blocked_until = 0.0
        self._spend = redis.script(SPEND)
        self._block_script = redis.script(BLOCK)

    def state(self) -> BudgetState:
        left = max(0.0, self._blocked_until - asyncio.get_running_loop().time())
        return BudgetState(self.requests, self.per_seconds, self._remaining, left)

    async def spend(self) -> None:
        left = self._blocked_until - asyncio.get_running_loop().time()
        if left > 0:
            raise blocked(self.account, left)
        member = f"{self._me}:{next(self._ids)}"
        window_ms = round(self.per_seconds * 1000)
        verdict, wait_ms, used = await self._redis.call(
            "budget",
            lambda client: self._spend(
                keys=[self._window, self._block],
                args=[self.requests, window_ms, member],
                client=client,
            ),
        )
        now = asyncio.get_running_loop().time()
        if verdict == 1:
            self._blocked_until = now + wait_ms / 1000
            raise blocked(self.account, wait_ms / 1000)
        self._remaining = max(0, self.requests - int(used))
        if verdict == 2:
            raise spent(self.account, self.requests, self.per_seconds, wait_ms / 1000)

    async def block(self, seconds: float) -> float:
        wait = max(1.0, seconds)
        until = asyncio.get_running_loop().time() + wait
        self._blocked_until = max(self._blocked_until, until)
        try:
            await self._redis.call(
                "block",
                lambda client: self._block_script(
                    keys=[self._block], args=[round(wait * 1000)], client=client
                ),
            )
        except ProviderUnavailable:
            log.warning(
                "could not share the 429 block of account %s in Redis; this replica keeps it",
                self.account,
            )
        return wait
