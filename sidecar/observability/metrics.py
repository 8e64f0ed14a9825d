"""Prometheus metrics, in a registry of their own per app (no process-wide globals)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "dns_sidecar_requests",
            "Protocol requests handled, by endpoint, method and status.",
            ["endpoint", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "dns_sidecar_request_duration_seconds",
            "Time to answer a protocol request, by endpoint.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "dns_sidecar_requests_in_flight",
            "Protocol requests being handled now.",
            registry=self.registry,
        )
        self.auth_failures = Counter(
            "dns_sidecar_auth_failures",
            "Requests refused by HMAC verification, by reason.",
            ["reason"],
            registry=self.registry,
        )
        self.replay_cache = Gauge(
            "dns_sidecar_replay_cache_entries",
            "Nonces held in the replay cache.",
            registry=self.registry,
        )
        self.config_generation = Gauge(
            "dns_sidecar_config_generation",
            "Generation of the routing table in force (1 at start, +1 per successful reload).",
            registry=self.registry,
        )
        self.record_changes = Counter(
            "dns_sidecar_record_changes",
            "Upserts and deletes by account and outcome.",
            ["account", "outcome"],
            registry=self.registry,
        )

        self.reloads = Counter(
            "dns_sidecar_config_reloads",
            "Routing-table reloads by result (a failure keeps the old table serving).",
            ["result"],
            registry=self.registry,
        )
        self.kubernetes_changes = Counter(
            "dns_sidecar_kubernetes_object_changes",
            "Changes seen to watched Kubernetes objects (Secrets, DNSClasses), by kind.",
            ["kind"],
            registry=self.registry,
        )

        # connections on the protocol port (sidecar.protocol.connections)
        self.connections_closed = Counter(
            "dns_sidecar_connections_closed",
            "Connections closed by the sidecar, by reason: slow_head, slow_body, or limit "
            "(closed to make room at the connection cap).",
            ["reason"],
            registry=self.registry,
        )
        self.http_errors = Counter(
            "dns_sidecar_http_parse_errors",
            "Requests the HTTP parser refused (bad or oversized head), by response status.",
            ["status"],
            registry=self.registry,
        )

        # label children by their values: ``labels()`` validates and locks on every call
        self._requests: dict[tuple[str, str, int], Counter] = {}
        self._latency: dict[str, Histogram] = {}
        self._changes: dict[tuple[str, str], Counter] = {}

    def count_request(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        """One protocol request answered: ``requests`` and ``latency``."""
        key = (endpoint, method, status)
        counter = self._requests.get(key)
        if counter is None:
            counter = self._requests[key] = self.requests.labels(endpoint, method, str(status))
        counter.inc()
        latency = self._latency.get(endpoint)
        if latency is None:
            latency = self._latency[endpoint] = self.latency.labels(endpoint)
        latency.observe(seconds)

    def count_change(self, account: str, outcome: str) -> None:
        """One record changed (or not) by an upsert or delete: ``record_changes``."""
        key = (account, outcome)
        counter = self._changes.get(key)
        if counter is None:
            counter = self._changes[key] = self.record_changes.labels(account, outcome)
        counter.inc()

    def watch_replay_cache(self, size: Callable[[], int]) -> None:
        self.replay_cache.set_function(lambda: float(size()))

    def render(self) -> bytes:
        return generate_latest(self.registry)
