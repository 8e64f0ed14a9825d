"""An optional short-lived cache of whole zones for GET, so a reconcile sweep over many records
costs one listing per zone per period instead of one call per record.

Only reads use it; writes always read the name fresh, and every write of ours moves the zone's
version (``coordination.ZoneVersions``: in-process, or in Redis so that a write on any replica
counts), so the next read lists the zone again. A listing is kept under the version read before
it started: one that raced a write is never served after the write was acknowledged. Moving the
version never fails the write (with Redis, a move Redis does not take is retried until it
does), and a Redis version also changes whenever this replica saw Redis fail, so a listing
never outlives a lost move by more than the ping interval plus the Redis timeout.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sidecar.clock import Clock
from sidecar.coordination.base import ZoneVersions
from sidecar.providers.cloudflare.mapping import CloudflareRecord
from sidecar.tasks import SingleFlight

Index = dict[tuple[str, str], list[CloudflareRecord]]  # (name, type) -> the records there


class ZoneReadCache:
    def __init__(self, seconds: float, clock: Clock, versions: ZoneVersions) -> None:
        self.seconds = seconds
        self._clock = clock
        self._versions = versions
        self._zones: dict[str, tuple[float, str, Index]] = {}  # zone -> (listed at, version, …)
        self._listings: SingleFlight[tuple[str, str], tuple[float, Index]] = SingleFlight()

    @property
    def enabled(self) -> bool:
        return self.seconds > 0

    async def records(self, zone_id: str, load: Callable[[], Awaitable[Index]]) -> Index:
        """The zone's records indexed by name and type, listed at most once per period and
        version; concurrent readers share one listing."""
        version = await self._versions.current(zone_id)
        entry = self._zones.get(zone_id)
        if entry is not None:
            listed_at, cached_version, index = entry
            if cached_version == version and self._clock.monotonic() - listed_at < self.seconds:
                return index

        async def listing() -> tuple[float, Index]:
            started = self._clock.monotonic()
            return started, await load()

        listed_at, index = await self._listings.run((zone_id, version), listing)
        current = self._zones.get(zone_id)
        if current is None or current[0] <= listed_at:
            self._zones[zone_id] = (listed_at, version, index)
        return index

    async def invalidate(self, zone_id: str) -> None:
        """A write changed the zone: move its version (on every replica, with Redis). Never
        raises: the write's answer stands whatever happens to the bookkeeping."""
        self._zones.pop(zone_id, None)
        if self.enabled:
            await self._versions.bump(zone_id)

    async def aclose(self) -> None:
        await self._listings.aclose()
        self._zones.clear()
