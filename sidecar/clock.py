"""Time as a collaborator, so windows, budgets and caches are testable without sleeping."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """Where behaviour depends on time, it asks one of these."""

    def time(self) -> float:
        """Wall-clock seconds since the epoch (HMAC timestamps, log lines)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (durations, cache ages)."""
        ...


class SystemClock:
    """The real clock."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


class FrozenClock:
    """A clock that moves only when told to; for tests."""

    def __init__(self, start: float = 1_767_225_600.0) -> None:  # 2026-01-01T00:00:00Z
        self.now = start
        self._mono = 1000.0

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self._mono += seconds
