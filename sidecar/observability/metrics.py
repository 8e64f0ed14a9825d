"""Prometheus metrics, in a registry of their own per app (no process-wide globals)."""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from itertools import accumulate

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _Count:
    """One labelled series of a ``PlainCounter``: the count, and when it began (``_created``)."""

    __slots__ = ("created", "value")

    def __init__(self) -> None:
        self.value = 0
        self.created = time.time()


class _Observations:
    """One labelled series of a ``PlainHistogram``: observations by bucket, their sum, start."""

    __slots__ = ("buckets", "created", "sum")

    def __init__(self, buckets: int) -> None:
        self.buckets = [0] * buckets  # by bucket, not cumulative; the last one is +Inf
        self.sum = 0.0
        self.created = time.time()


class PlainCounter(Collector):
    """A counter family kept as plain numbers, for the per-request hot path.

    A prometheus_client ``Counter`` child costs several Python calls per ``inc()`` (label
    checks, a lock); here the caller looks the series up in ``series`` and adds 1 to its
    ``value``. The family is built only when the registry is collected (a /metrics scrape), with
    the samples a ``Counter`` with these label names would give (label values as ``str``).

    No lock: the counting and the scrape all run on the one event-loop thread.
    """

    def __init__(
        self, name: str, documentation: str, labelnames: Sequence[str], registry: CollectorRegistry
    ) -> None:
        self.name, self.documentation, self.labelnames = name, documentation, tuple(labelnames)
        self.series: dict[tuple[object, ...], _Count] = {}
        registry.register(self)

    def add(self, *labelvalues: object) -> _Count:
        """The series for these label values, new (at 0) on first use."""
        return self.series.setdefault(labelvalues, _Count())

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for labelvalues, count in self.series.items():
            labels = [str(value) for value in labelvalues]
            family.add_metric(labels, float(count.value), created=count.created)
        yield family


class PlainHistogram(Collector):
    """A histogram family kept as plain numbers, like ``PlainCounter`` (no lock, same reason).

    The caller adds 1 to ``buckets[bisect_left(bounds, seconds)]`` of its series and ``seconds``
    to its ``sum``; the cumulative ``_bucket`` samples, ``_count``, ``_sum`` and ``_created`` are
    built at scrape time, as a prometheus_client ``Histogram`` with these buckets writes them.
    """

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        bounds: Sequence[float],
        registry: CollectorRegistry,
    ) -> None:
        self.name, self.documentation, self.labelnames = name, documentation, tuple(labelnames)
        self.bounds = tuple(bounds)  # upper bounds, sorted, without +Inf
        # the ``le`` label values, written as prometheus_client writes them ("0.001", "1.0", "+Inf")
        upper = (*self.bounds, float("inf"))
        self._le = [floatToGoString(bound) for bound in upper]  # type: ignore[no-untyped-call]
        self.series: dict[tuple[str, ...], _Observations] = {}
        registry.register(self)

    def add(self, *labelvalues: str) -> _Observations:
        """The series for these label values, new (empty) on first use."""
        return self.series.setdefault(labelvalues, _Observations(len(self._le)))

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for labelvalues, seen in self.series.items():
            cumulative = zip(self._le, map(float, accumulate(seen.buckets)), strict=True)
            family.add_metric(labelvalues, list(cumulative), seen.sum)
            labels = dict(zip(self.labelnames, labelvalues, strict=True))
            family.add_sample(f"{self.name}_created", labels, seen.created)
        yield family


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._add_request_metrics()
        self._add_config_metrics()
        self._add_connection_metrics()

    def _add_request_metrics(self) -> None:
        """Requests, their outcome and what they changed."""
        # counted once per request (or record change): plain numbers, see PlainCounter
        self.requests = PlainCounter(
            "dns_sidecar_requests",
            "Protocol requests handled, by endpoint, method and status.",
            ["endpoint", "method", "status"],
            self.registry,
        )
        self.latency = PlainHistogram(
            "dns_sidecar_request_duration_seconds",
            "Time to answer a protocol request, by endpoint.",
            ["endpoint"],
            LATENCY_BUCKETS,
            self.registry,
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
        self.record_changes = PlainCounter(
            "dns_sidecar_record_changes",
            "Upserts and deletes by account and outcome.",
            ["account", "outcome"],
            self.registry,
        )

    def _add_config_metrics(self) -> None:
        """The routing table and the Kubernetes objects it reads."""
        self.config_generation = Gauge(
            "dns_sidecar_config_generation",
            "Generation of the routing table in force (1 at start, +1 per successful reload).",
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

    def _add_connection_metrics(self) -> None:
        """Connections on the protocol port (sidecar.protocol.connections)."""
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

    def count_request(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        """One protocol request answered: ``requests`` and ``latency``, a dict lookup and an
        addition or two each (called for every request; see ``PlainCounter``)."""
        count = self.requests.series.get((endpoint, method, status))
        if count is None:
            count = self.requests.add(endpoint, method, status)
        count.value += 1
        latency = self.latency
        seen = latency.series.get((endpoint,))
        if seen is None:
            seen = latency.add(endpoint)
        seen.buckets[bisect_left(latency.bounds, seconds)] += 1
        seen.sum += seconds

    def count_change(self, account: str, outcome: str) -> None:
        """One record changed (or not) by an upsert or delete: ``record_changes``."""
        count = self.record_changes.series.get((account, outcome))
        if count is None:
            count = self.record_changes.add(account, outcome)
        count.value += 1

    def watch_replay_cache(self, size: Callable[[], int]) -> None:
        self.replay_cache.set_function(lambda: float(size()))

    def render(self) -> bytes:
        return generate_latest(self.registry)
