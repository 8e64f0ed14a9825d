"""An optional short-lived cache of whole zones for GET, so a reconcile sweep over many records
costs one listing per zone per period instead of one call per record.

Only reads use it; writes always read the name fresh, and every write of ours drops the zone's
entry so the next read sees it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from sidecar import background
from sidecar.clock import Clock

Index = dict[tuple[str, str], list[Any]]  # (name, type) -> the records there


class ZoneReadCache:
    def __init__(self, seconds: float, clock: Clock) -> None:
        self.seconds = seconds
        self._clock = clock
        self._zones: dict[str, tuple[float, asyncio.Task[Index]]] = {}

    @property
    def enabled(self) -> bool:
        return self.seconds > 0

    async def records(self, zone_id: str, load: Callable[[], Awaitable[Index]]) -> Index:
        """The zone's records indexed by name and type, listed at most once per period."""
        now = self._clock.monotonic()
        entry = self._zones.get(zone_id)
        if entry is None or now - entry[0] >= self.seconds:
            task = asyncio.ensure_future(load())  # concurrent readers share one listing
            entry = self._zones[zone_id] = (now, task)
        try:
            return await asyncio.shield(entry[1])
        except BaseException:
            if self._zones.get(zone_id) is entry:
                del self._zones[zone_id]
            raise

    def invalidate(self, zone_id: str) -> None:
        self._zones.pop(zone_id, None)

    async def aclose(self) -> None:
        await background.cancel(task for _, task in self._zones.values())
        self._zones.clear()
