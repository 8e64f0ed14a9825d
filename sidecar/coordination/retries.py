"""Redis writes that must happen even though the request that wanted them has been answered.

Once a batch has reached the provider, the request's answer tells what the provider did; the
Redis bookkeeping that follows (moving the zone's read-cache version, releasing the write
lock) must not turn it into "not served" when Redis fails. Such a write is handed over here
and retried in the background until Redis takes it, or until it no longer matters (a lock's
lease that has run out by itself). Retries start quickly and back off to ``interval`` (the ping
interval): once Redis is back, each pending write lands within ``interval`` plus one Redis
call's timeout.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sidecar.errors import ProviderUnavailable

log = logging.getLogger(__name__)

FIRST_RETRY = 0.05


@dataclass
class _Pending:
    work: Callable[[], Awaitable[object]]
    until: float | None  # event-loop time after which it no longer matters; None: never


class Retries:
    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._pending: dict[str, _Pending] = {}
        self._wake = asyncio.Event()

    def __len__(self) -> int:
        return len(self._pending)

    def add(
        self, key: str, work: Callable[[], Awaitable[object]], *, until: float | None = None
    ) -> None:
        """Retry ``work`` (one bounded Redis call) until it succeeds; a later ``add`` of the same
        ``key`` replaces it (moving one version twice is moving it once)."""
        self._pending[key] = _Pending(work, until)
        self._wake.set()

    async def run_once(self) -> bool:
        """Try every pending write once; whether none is left."""
        now = asyncio.get_running_loop().time()
        for key, pending in list(self._pending.items()):
            if pending.until is not None and now >= pending.until:
                del self._pending[key]
                continue
            try:
                await pending.work()
            except ProviderUnavailable:
                continue  # recorded by the connection; tried again after the backoff
            if self._pending.get(key) is pending:
                del self._pending[key]
                log.info("Redis took the delayed write %s", key)
        return not self._pending

    async def flush(self, seconds: float) -> None:
        """At shutdown: one last try of every pending write, within ``seconds`` in all; what
        Redis still does not take is named in a warning (it is lost with this process)."""
        if not self._pending:
            return
        try:
            async with asyncio.timeout(seconds):
                await self.run_once()
        except TimeoutError:
            pass
        if self._pending:
            log.warning(
                "shutting down with %d delayed Redis write(s) Redis did not take: %s; a replica "
                "that saw no Redis failure may serve a read-cached listing of those zones until "
                "its readCacheSeconds run out",
                len(self._pending),
                ", ".join(sorted(self._pending)),
            )

    async def run_forever(self) -> None:
        """Wait for pending writes and retry them, backing off up to ``interval``."""
        while True:
            await self._wake.wait()
            delay = FIRST_RETRY
            while not await self.run_once():
                await asyncio.sleep(delay)  # the backoff between attempts, not a synchronisation
                delay = min(delay * 2, self.interval)
            self._wake.clear()
