"""The sweeps' metrics (SPEC section 9), registered in the app's own registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class SweepMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.orphans = Gauge(
            "dns_sidecar_orphaned_record_sets",
            "Record sets dns-sidecar wrote that no DNSRecord wants, by zone (last sweep).",
            ["zone"],
            registry=registry,
        )
        self.drift = Gauge(
            "dns_sidecar_drifted_records",
            "DNSRecords whose set at the provider is missing or differs, by zone (last sweep).",
            ["zone"],
            registry=registry,
        )
        self.conflicts = Gauge(
            "dns_sidecar_record_conflicts",
            "DNSRecords whose name holds records dns-sidecar does not own, by zone (last sweep).",
            ["zone"],
            registry=registry,
        )
        self.actions = Counter(
            "dns_sidecar_sweep_actions",
            "Changes sweeps made: orphans pruned, drift repaired.",
            ["action"],
            registry=registry,
        )
        for action in ("prune", "repair"):
            self.actions.labels(action)
