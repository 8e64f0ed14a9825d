"""``dns-sidecar audit``: one sweep from the command line, with the routing table, credentials
and DNSRecords the service would use, changing nothing (SPEC section 9).

It reads the table, follows the Secrets, DNSClasses and DNSRecords it names until they are
synced (``DNS_SIDECAR_KUBERNETES_SYNC_TIMEOUT``), lists each zone once, and prints the plan:
exit 0 when there is nothing to do, 1 when there is, 2 when it could not look.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass

from sidecar.app import load_runtime, make_store
from sidecar.auth.replay import ReplayCache
from sidecar.clock import SystemClock
from sidecar.config.live import LiveConfig
from sidecar.coordination.local import LocalCoordination, LocalTurns
from sidecar.dnsrecords.follow import DnsRecordFollower
from sidecar.observability.metrics import Metrics
from sidecar.settings import Settings
from sidecar.sweeps import report
from sidecar.sweeps.sweeper import Sweep, Sweeper


@dataclass(frozen=True, slots=True)
class Audit:
    output: str
    exit_code: int


async def audit(settings: Settings, *, as_json: bool) -> Audit:
    """One sweep, nothing changed; the plan in text or JSON and the exit code."""
    clock = SystemClock()
    metrics = Metrics()
    store = make_store(settings, metrics)
    coordination = LocalCoordination(ReplayCache(1), clock)  # read-only: nothing to share
    current = load_runtime(settings, store, clock, coordination).runtime
    follower = DnsRecordFollower(
        store, settings.kubernetes.dnsrecord_scopes, read_timeout=settings.watch.list_timeout
    )
    sweeper = Sweeper(
        LiveConfig(current),
        follower.index,
        settings.sweeps,
        deployment=settings.table.owner_id,
        clock=clock,
        turns=LocalTurns(),
    )
    try:
        await store.start()
        await store.track(current.credentials, current.dns_classes)
        follower.follow(current.dns_classes)
        await store.wait_synced(settings.kubernetes.sync_timeout)
        why = await _synced(follower, settings.kubernetes.sync_timeout)
        sweep = Sweep(started=clock.time(), skipped=why) if why else await sweeper.sweep(act=False)
    finally:
        await store.stop()
        await current.aclose()
    if as_json:
        return Audit(json.dumps(report.as_json(sweep), indent=2) + "\n", report.exit_code(sweep))
    policies = {
        (route.zone.name, route.account.name): (
            f"orphans: {route.zone.orphans.value}, drift: {route.zone.drift.value}"
        )
        for route in current.table
    }
    return Audit(report.as_text(sweep, policies), report.exit_code(sweep))


async def _synced(follower: DnsRecordFollower, seconds: float) -> str | None:
    """``None`` once the DNSRecords are synced, else why they are not (within ``seconds``)."""
    index = follower.index
    deadline = time.monotonic() + seconds
    while not index.synced:
        left = deadline - time.monotonic()
        if index.off_reason is not None or left <= 0:
            break
        await index.changed(left)
    if index.synced:
        return None
    reason = index.off_reason or index.status().get("lastError") or "not synced in time"
    return f"the DNSRecords could not be read ({reason})"


def run(settings: Settings, *, as_json: bool) -> Audit:
    return asyncio.run(audit(settings, as_json=as_json))
