"""The replay cache: nonces seen within the timestamp window, bounded, failing closed.

A nonce is remembered until the request that carried it could no longer be accepted anyway
(its timestamp plus the allowed skew). Entries are bucketed by the whole second they expire
in, so purging costs only the expired entries and each entry costs a set slot and a list slot
beside the nonce string itself. When the cache holds ``capacity`` unexpired nonces a new one is
refused (the request is rejected), never let through unchecked.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from sidecar.coordination.replay import full, replayed


class ReplayCache:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._seen: set[str] = set()
        self._buckets: defaultdict[int, list[str]] = defaultdict(list)
        self._purged_to = -1  # every bucket for a second <= this has been purged
        self._purge_from = self._purged_to + 2  # the first moment that has more to purge

    def __len__(self) -> int:
        return len(self._seen)

    def seen(self, nonce: str, now: float) -> bool:
        """Whether ``nonce`` is in the window already."""
        self._purge(now)
        return nonce in self._seen

    def add(self, nonce: str, expires: float, now: float) -> bool:
        """Remember ``nonce`` until ``expires``; ``False`` (and nothing stored) when full."""
        self._purge(now)
        return self._admit(nonce, expires)

    async def record(self, nonce: str, signed_at: float, expires: float, now: float) -> None:
        """The :class:`~sidecar.coordination.base.NonceStore` call: refuse a nonce seen already,
        or one there is no room for (``seen`` then ``add``, purged once)."""
        if self.seen(nonce, now):
            raise replayed(expires - signed_at)
        if not self._admit(nonce, expires):
            raise full(self.retry_after(now), self.capacity)

    def status(self) -> dict[str, Any]:
        return {"entries": len(self), "capacity": self.capacity}

    def retry_after(self, now: float) -> float:
        """Seconds until the earliest entry expires (room for a new nonce)."""
        if not self._buckets:
            return 1.0
        return max(1.0, min(self._buckets) - now)

    def _admit(self, nonce: str, expires: float) -> bool:
        """Remember ``nonce`` (purged already) in the bucket of the second it expires in, if
        there is room."""
        if len(self._seen) >= self.capacity:
            return False
        self._seen.add(nonce)
        second = math.ceil(expires)
        if second <= self._purged_to:  # never into a bucket already purged
            second = self._purged_to + 1
        self._buckets[second].append(nonce)
        return True

    def _purge(self, now: float) -> None:
        if now < self._purge_from:  # == math.floor(now) - 1 <= self._purged_to: nothing new
            return
        second = math.floor(now) - 1  # buckets strictly in the past have expired
        if second - self._purged_to > len(self._buckets):
            due = [s for s in self._buckets if s <= second]
        else:
            due = [s for s in range(self._purged_to + 1, second + 1) if s in self._buckets]
        for bucket in due:
            self._seen.difference_update(self._buckets.pop(bucket))
        self._purged_to = second
        self._purge_from = second + 2
