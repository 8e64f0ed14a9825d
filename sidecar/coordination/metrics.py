"""Counters of the shared state's Redis calls, registered in the app's own registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

WAIT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class CoordinationMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.calls = Counter(
            "dns_sidecar_redis_calls",
            "Calls to the shared state in Redis, by operation.",
            ["operation"],
            registry=registry,
        )
        self.errors = Counter(
            "dns_sidecar_redis_errors",
            "Failed or timed-out calls to Redis, by operation (before a provider call the request "
            "was refused; after one, the write is retried in the background).",
            ["operation"],
            registry=registry,
        )
        self.lock_waits = Histogram(
            "dns_sidecar_redis_lock_wait_seconds",
            "Time a write waited for its lock held by another request or replica.",
            buckets=WAIT_BUCKETS,
            registry=registry,
        )
        self.lock_timeouts = Counter(
            "dns_sidecar_redis_lock_timeouts",
            "Writes refused because their lock stayed held past the bounded wait.",
            registry=registry,
        )
        self.state_losses = Counter(
            "dns_sidecar_redis_state_losses",
            "Times Redis was found to have lost the shared state (its sentinel key vanished).",
            registry=registry,
        )
