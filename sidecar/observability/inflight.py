"""Counting requests in progress, so shutdown can wait for them to finish."""

from __future__ import annotations

import asyncio

from prometheus_client import Gauge


class InFlight:
    def __init__(self, gauge: Gauge) -> None:
        self._count = 0
        self._idle = asyncio.Event()
        self._idle.set()
        gauge.set_function(lambda: float(self._count))  # read at scrape, not set per request

    @property
    def count(self) -> int:
        return self._count

    def enter(self) -> None:
        if not self._count:
            self._idle.clear()
        self._count += 1

    def leave(self) -> None:
        self._count -= 1
        if self._count == 0:
            self._idle.set()

    async def wait_idle(self, seconds: float) -> bool:
        """Whether every request finished within ``seconds``."""
        try:
            await asyncio.wait_for(self._idle.wait(), seconds)
        except TimeoutError:
            return False
        return True
