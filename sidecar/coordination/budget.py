"""An account's request budget, in-process: Cloudflare allows 1200 requests per 5 minutes.

The budget is a sliding window of the times of the calls made; when it is spent, or while
Cloudflare's own 429 says to wait, calls fail fast with ``RATE_LIMITED`` and ``Retry-After``
instead of being sent into a block (which would only extend it). ``redis_budget`` shares the
same window between replicas.
"""

from __future__ import annotations

from collections import deque

from sidecar.clock import Clock
from sidecar.coordination.base import BudgetState
from sidecar.errors import RateLimited


def spent(account: str, requests: int, per_seconds: float, retry_after: float) -> RateLimited:
    return RateLimited(
        f"Account {account!r} has used its budget of {requests} Cloudflare "
        f"requests per {per_seconds:g} s.",
        retry_after=retry_after,
        details={"account": account},
    )


def blocked(account: str, retry_after: float) -> RateLimited:
    return RateLimited(
        f"Cloudflare rate-limited account {account!r}; not sending more requests "
        "until its Retry-After has passed.",
        retry_after=retry_after,
        details={"account": account},
    )


class Budget:
    def __init__(self, account: str, requests: int, per_seconds: float, clock: Clock) -> None:
        self.account = account
        self.requests = requests
        self.per_seconds = per_seconds
        self._clock = clock
        self._sent: deque[float] = deque()
        self._blocked_until = 0.0

    @property
    def used(self) -> int:
        self._expire(self._clock.monotonic())
        return len(self._sent)

    @property
    def remaining(self) -> int:
        return self.requests - self.used

    def blocked_for(self) -> float:
        """Seconds until Cloudflare's 429 block ends (0 when not blocked)."""
        return max(0.0, self._blocked_until - self._clock.monotonic())

    def state(self) -> BudgetState:
        return BudgetState(self.requests, self.per_seconds, self.remaining, self.blocked_for())

    async def spend(self) -> None:
        """Count one call, or raise ``RateLimited`` if it must not be sent."""
        now = self._clock.monotonic()
        if now < self._blocked_until:
            raise blocked(self.account, self._blocked_until - now)
        self._expire(now)
        if len(self._sent) >= self.requests:
            retry = self._sent[0] + self.per_seconds - now
            raise spent(self.account, self.requests, self.per_seconds, retry)
        self._sent.append(now)

    async def block(self, seconds: float) -> float:
        """Cloudflare answered 429: stop sending for ``seconds``; returns the wait."""
        wait = max(1.0, seconds)
        self._blocked_until = max(self._blocked_until, self._clock.monotonic() + wait)
        return wait

    def _expire(self, now: float) -> None:
        horizon = now - self.per_seconds
        while self._sent and self._sent[0] <= horizon:
            self._sent.popleft()
