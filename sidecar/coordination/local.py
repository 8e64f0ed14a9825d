"""One replica, no Redis: the shared state lives in this process."""

from __future__ import annotations

from collections import Counter
from typing import Any

from sidecar.clock import Clock
from sidecar.coordination.base import NonceStore, RequestBudget
from sidecar.coordination.budget import Budget
from sidecar.coordination.locks import KeyedLocks


class LocalVersions:
    """Zone versions in a counter: a write here is all there is to know about."""

    def __init__(self) -> None:
        self._versions: Counter[str] = Counter()

    async def current(self, zone: str) -> str:
        return str(self._versions[zone])

    async def bump(self, zone: str) -> None:
        self._versions[zone] += 1


class LocalTurns:
    """One replica: every turn is this process's."""

    async def take(self, name: str, lease: float) -> bool:
        return True


class LocalCoordination:
    """The in-process implementations; the process must run as a single replica."""

    def __init__(self, nonces: NonceStore, clock: Clock) -> None:
        self.nonces = nonces
        self.locks = KeyedLocks()
        self.versions = LocalVersions()
        self.turns = LocalTurns()
        self._clock = clock

    def budget(self, account: str, requests: int, per_seconds: float) -> RequestBudget:
        return Budget(account, requests, per_seconds, self._clock)

    def problem(self) -> str | None:
        return None

    def status(self) -> dict[str, Any]:
        return {"backend": "in-process (single replica)"}

    async def start(self) -> None:
        return None

    async def aclose(self) -> None:
        return None
