"""Nonces shared by every replica: one ``SET NX`` per signed request, with the window as expiry.

If Redis loses its data (a restart without persistence, a failover) the nonces of the last
window are gone. The connection notices (its sentinel key vanished or changed, see
``connection``), and until one window has passed this store refuses every request signed
before that moment: a replay of one of them can no longer be recognised.
"""

from __future__ import annotations

from typing import Any

from sidecar.coordination.connection import RedisConnection
from sidecar.errors import AuthFailed, ProviderUnavailable, RateLimited


def replayed(window: float) -> AuthFailed:
    return AuthFailed(
        f"The nonce was already used within the last {window:g} s: a replayed request.",
        reason="replayed_nonce",
    )


def full(retry_after: float, capacity: int) -> RateLimited:
    return RateLimited(
        "Too many signed requests in the replay window: the replay cache is full, so the "
        "request is refused rather than let through unchecked.",
        retry_after=retry_after,
        details={"replayCacheCapacity": capacity},
    )


class RedisNonces:
    def __init__(self, redis: RedisConnection) -> None:
        self._redis = redis

    def __len__(self) -> int:
        return 0  # they live in Redis

    async def record(self, nonce: str, signed_at: float, expires: float, now: float) -> None:
        ttl_ms = max(1, round((expires - now) * 1000))
        fresh, lost_at = await self._redis.set_once(f"nonce:{nonce}", ttl_ms)
        if lost_at is not None and signed_at < lost_at:
            raise ProviderUnavailable(
                "The shared replay state in Redis was lost (the server restarted or failed "
                "over), so requests signed before that moment cannot be checked for replay; "
                "sign the request again.",
                details={"coordination": "redis", "lostAt": lost_at},
            )
        if not fresh:
            raise replayed(expires - signed_at)

    def status(self) -> dict[str, Any]:
        return {"entries": None, "capacity": None, "sharedIn": "redis"}
