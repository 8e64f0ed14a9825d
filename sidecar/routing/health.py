"""Account health, cached so that probes do not cost a provider API call each."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from sidecar.clock import Clock
from sidecar.providers.base import Health
from sidecar.routing.table import Account

HEALTH_TIMEOUT = 10.0


class HealthCache:
    """Asks every account at most once per ``ttl`` seconds; concurrent askers share one check."""

    def __init__(self, clock: Clock, ttl: float) -> None:
        self._clock = clock
        self._ttl = ttl
        self._checked_at = float("-inf")
        self._accounts: Mapping[str, Account] | None = None
        self._result: dict[str, Health] = {}
        self._lock = asyncio.Lock()

    @property
    def last(self) -> dict[str, Health]:
        """The latest result, without checking (for ``/status``)."""
        return dict(self._result)

    async def check(self, accounts: Mapping[str, Account]) -> dict[str, Health]:
        async with self._lock:
            fresh = self._clock.monotonic() - self._checked_at < self._ttl
            if fresh and accounts is self._accounts:
                return dict(self._result)
            names = list(accounts)
            results = await asyncio.gather(*(_probe(accounts[name]) for name in names))
            self._result = dict(zip(names, results, strict=True))
            self._accounts = accounts
            self._checked_at = self._clock.monotonic()
            return dict(self._result)


async def _probe(account: Account) -> Health:
    try:
        return await asyncio.wait_for(account.provider.health(), HEALTH_TIMEOUT)
    except TimeoutError:
        return Health(healthy=False, message=f"no answer within {HEALTH_TIMEOUT:g} s")
    except Exception as err:  # noqa: BLE001 - any failure is "unhealthy", with its reason
        return Health(healthy=False, message=str(err) or type(err).__name__)
