"""Shared state on Redis or Valkey: every replica of one deployment acts as one process."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry

from sidecar.clock import Clock
from sidecar.coordination.base import RequestBudget
from sidecar.coordination.connection import RedisConnection
from sidecar.coordination.metrics import CoordinationMetrics
from sidecar.coordination.redis_budget import RedisBudget
from sidecar.coordination.redis_locks import RedisLocks
from sidecar.coordination.redis_turns import RedisTurns
from sidecar.coordination.redis_versions import RedisVersions
from sidecar.coordination.replay import RedisNonces
from sidecar.coordination.retries import Retries
from sidecar.settings import RedisSettings
from sidecar.tasks import Tasks


class RedisCoordination:
    def __init__(
        self,
        settings: RedisSettings,
        *,
        provider_timeout: float,
        clock: Clock,
        registry: CollectorRegistry,
    ) -> None:
        assert settings.url is not None
        self.settings = settings
        self.redis = RedisConnection(
            settings.url.get_secret_value(),
            prefix=settings.prefix,
            timeout=settings.timeout,
            clock=clock,
            metrics=CoordinationMetrics(registry),
            password_file=settings.password_file,
        )
        self.nonces = RedisNonces(self.redis)
        self.retries = Retries(settings.ping_interval)
        # a write holds its lock for a read and a batch, each a budget spend in Redis then a
        # provider call, each bounded: the lease outlasts both, and a second to release it
        lease = max(settings.lock_lease, 2 * (provider_timeout + settings.timeout) + 1)
        self.locks = RedisLocks(
            self.redis, lease=lease, wait=settings.lock_wait, retries=self.retries
        )
        self.versions = RedisVersions(self.redis, self.retries)
        self.turns = RedisTurns(self.redis)
        self.tasks = Tasks("redis")

    def budget(self, account: str, requests: int, per_seconds: float) -> RequestBudget:
        return RedisBudget(self.redis, account, requests, per_seconds)

    def problem(self) -> str | None:
        if self.redis.connected:
            return None
        why = self.redis.last_error or "not reached yet"
        return f"shared state in Redis at {self.redis.url} is unavailable: {why}"

    def status(self) -> dict[str, Any]:
        return {
            **self.redis.status(),
            "lockLeaseSeconds": self.locks.lease,
            "lockWaitSeconds": self.locks.wait,
            "delayedWrites": len(self.retries),
            "loops": self.tasks.status(),
        }

    async def start(self) -> None:
        self.tasks.loop("ping", lambda: self.redis.ping_forever(self.settings.ping_interval))
        self.tasks.loop("delayed writes", self.retries.run_forever)

    async def aclose(self) -> None:
        await self.tasks.aclose()
        await self.retries.flush(self.redis.timeout)  # a version move lost here goes unseen
        await self.redis.aclose()
