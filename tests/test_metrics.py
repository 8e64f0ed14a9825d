"""The per-request metrics, counted as plain numbers, expose what prometheus_client's own
Counter and Histogram would: the same lines for the same observations."""

from __future__ import annotations

import time

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from sidecar.observability.metrics import LATENCY_BUCKETS, Metrics

# (endpoint, method, status, seconds) for a request, (account, outcome) for a record change
Request = tuple[str, str, int, float]
Change = tuple[str, str]

FAMILIES = {
    "dns_sidecar_requests": ("_total", "_created"),
    "dns_sidecar_request_duration_seconds": ("_bucket", "_count", "_sum", "_created"),
    "dns_sidecar_record_changes": ("_total", "_created"),
}
NAMES = {family + suffix for family, suffixes in FAMILIES.items() for suffix in ("", *suffixes)}

ENDPOINT = "/records/{type}/{domain}/{subdomain}"


def counted(requests: list[Request], changes: list[Change]) -> bytes:
    metrics = Metrics()
    for request in requests:
        metrics.count_request(*request)
    for change in changes:
        metrics.count_change(*change)
    return metrics.render()


def counted_by_prometheus_client(requests: list[Request], changes: list[Change]) -> bytes:
    """The same metrics as prometheus_client's Counter and Histogram, as they were declared."""
    registry = CollectorRegistry(auto_describe=True)
    by_request = Counter(
        "dns_sidecar_requests",
        "Protocol requests handled, by endpoint, method and status.",
        ["endpoint", "method", "status"],
        registry=registry,
    )
    latency = Histogram(
        "dns_sidecar_request_duration_seconds",
        "Time to answer a protocol request, by endpoint.",
        ["endpoint"],
        buckets=LATENCY_BUCKETS,
        registry=registry,
    )
    record_changes = Counter(
        "dns_sidecar_record_changes",
        "Upserts and deletes by account and outcome.",
        ["account", "outcome"],
        registry=registry,
    )
    for endpoint, method, status, seconds in requests:
        by_request.labels(endpoint, method, str(status)).inc()
        latency.labels(endpoint).observe(seconds)
    for account, outcome in changes:
        record_changes.labels(account, outcome).inc()
    return generate_latest(registry)


def lines(text: bytes) -> list[str]:
    """The exposition's lines for these families, in order; a ``_created`` sample without its
    value (a timestamp of when the series began)."""
    kept = []
    for line in text.decode().splitlines():
        name = line.removeprefix("# HELP ").removeprefix("# TYPE ").split("{")[0].split(" ")[0]
        if name not in NAMES:
            continue
        created = name.endswith("_created") and not line.startswith("#")
        kept.append(line.rsplit(" ", 1)[0] if created else line)
    return kept


def test_no_requests_yet_exposes_the_same_help_and_type() -> None:
    assert lines(counted([], [])) == lines(counted_by_prometheus_client([], []))
    assert "# TYPE dns_sidecar_request_duration_seconds histogram" in lines(counted([], []))


def test_same_lines_as_prometheus_client() -> None:
    """Every bucket bound exactly, just above it, beyond the last; several series of each."""
    seconds = [0.0, *LATENCY_BUCKETS, *(bound * 1.01 for bound in LATENCY_BUCKETS), 60.0]
    requests: list[Request] = [("/records", "POST", 200, s) for s in seconds] + [
        (ENDPOINT, "GET", 404, 0.0005),
        (ENDPOINT, "DELETE", 200, 0.3),
        (ENDPOINT, "GET", 200, 0.02),
        ("/records", "POST", 401, 0.0001),
        (ENDPOINT, "GET", 404, 0.004),
    ]
    changes: list[Change] = [("memory", "created"), ("cf", "updated"), ("memory", "created")]
    ours = lines(counted(requests, changes))
    assert ours == lines(counted_by_prometheus_client(requests, changes))
    assert 'dns_sidecar_request_duration_seconds_bucket{endpoint="/records",le="1.0"} 21.0' in ours
    assert 'dns_sidecar_request_duration_seconds_bucket{endpoint="/records",le="+Inf"} 29.0' in ours
    assert 'dns_sidecar_record_changes_total{account="memory",outcome="created"} 2.0' in ours


@given(
    requests=st.lists(
        st.tuples(
            st.sampled_from(["/records", ENDPOINT, "/healthz"]),
            st.sampled_from(["GET", "POST", "DELETE"]),
            st.sampled_from([200, 201, 400, 401, 404, 500]),
            st.one_of(
                st.sampled_from(LATENCY_BUCKETS),
                st.floats(min_value=0, max_value=30, allow_nan=False),
            ),
        ),
        max_size=40,
    ),
    changes=st.lists(
        st.tuples(
            st.sampled_from(["memory", "cf"]),
            st.sampled_from(["created", "updated", "unchanged", "deleted"]),
        ),
        max_size=10,
    ),
)
def test_any_sequence_gives_prometheus_clients_lines(
    requests: list[Request], changes: list[Change]
) -> None:
    assert lines(counted(requests, changes)) == lines(
        counted_by_prometheus_client(requests, changes)
    )


def test_samples_read_through_the_registry() -> None:
    """``get_sample_value`` finds each sample, as floats; ``_created`` is when a series began."""
    metrics = Metrics()
    before = time.time()
    metrics.count_request("/records", "POST", 200, 0.003)
    metrics.count_change("memory", "created")
    after = time.time()
    metrics.count_request("/records", "POST", 200, 0.2)
    metrics.count_request("/records", "GET", 404, 12.0)
    metrics.count_change("memory", "created")
    value = metrics.registry.get_sample_value

    post = {"endpoint": "/records", "method": "POST", "status": "200"}
    assert value("dns_sidecar_requests_total", post) == 2.0
    assert isinstance(value("dns_sidecar_requests_total", post), float)
    assert value("dns_sidecar_requests_total", post | {"method": "GET", "status": "404"}) == 1.0
    assert value("dns_sidecar_requests_total", post | {"status": "201"}) is None
    records = {"endpoint": "/records"}
    assert value("dns_sidecar_request_duration_seconds_count", records) == 3.0
    assert value("dns_sidecar_request_duration_seconds_sum", records) == 0.003 + 0.2 + 12.0
    buckets = {
        le: value("dns_sidecar_request_duration_seconds_bucket", records | {"le": le})
        for le in ("0.001", "0.0025", "0.005", "0.1", "0.25", "10.0", "+Inf")
    }
    assert buckets == {
        "0.001": 0.0,
        "0.0025": 0.0,
        "0.005": 1.0,
        "0.1": 1.0,
        "0.25": 2.0,
        "10.0": 2.0,
        "+Inf": 3.0,
    }
    changes = {"account": "memory", "outcome": "created"}
    assert value("dns_sidecar_record_changes_total", changes) == 2.0

    for name, labels in [
        ("dns_sidecar_requests_created", post),
        ("dns_sidecar_request_duration_seconds_created", records),
        ("dns_sidecar_record_changes_created", changes),
    ]:
        created = value(name, labels)
        assert created is not None
        assert before <= created <= after, name  # set by the first count, kept by later ones
