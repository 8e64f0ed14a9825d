"""``python -m bench.dnsrecord_sweep [--quick]``: what one sweep of the DNSRecords costs.

2 000 DNSRecords (``--quick``: 200) of one DNSClass over 4 zones at the Cloudflare emulator (a
separate process), as the operator left them: most in place, some drifted, some orphans. The
sweep runs here, as the service runs it (the DNSRecord index fed as its watch feeds it, the
Cloudflare provider on the real SDK, reading 100 records a page so that every zone takes
several pages): the API calls it made (target: one listing per zone, all its pages, nothing
else), its wall time, and the peak RSS of this process before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from typing import Any

import aiohttp

from bench import processes
from bench.scenarios import ZONES, Row
from sidecar.auth.clients import Client, ClientKind
from sidecar.clock import SystemClock
from sidecar.config.live import LiveConfig
from sidecar.config.runtime import Runtime
from sidecar.coordination.budget import Budget
from sidecar.coordination.local import LocalTurns, LocalVersions
from sidecar.coordination.locks import KeyedLocks
from sidecar.dnsrecords.index import DnsRecordIndex
from sidecar.providers.base import ZonePolicy
from sidecar.providers.cloudflare.auth import Auth
from sidecar.providers.cloudflare.client import CloudflareApi
from sidecar.providers.cloudflare.provider import CloudflareProvider
from sidecar.providers.ownership import Owner
from sidecar.routing.table import Account, Route, RoutingTable
from sidecar.settings import SweepSettings
from sidecar.sweeps.sweeper import Sweeper

OWNER = Owner("dns-sidecar", "public")
MARK = OWNER.marker("managed by dns-sidecar")
PAGE = 100


def dnsrecord(zone: str, i: int) -> dict[str, Any]:
    spec = {
        "type": "A",
        "domain": zone,
        "subdomain": f"h{i}",
        "values": ["192.0.2.1"],
        "dnsClassRef": {"name": "public"},
    }
    return {"metadata": {"namespace": "apps", "name": f"{zone}-{i}"}, "spec": spec}


async def seed(url: str, per_zone: int) -> dict[str, str]:
    """Each zone: the DNSRecords' sets, one in 20 drifted, and one orphan in 20 more."""
    headers = {"Authorization": "Bearer bench-token"}
    async with aiohttp.ClientSession(headers=headers) as session:
        async with session.get(url + "/__emulator/zones") as reply:
            ids = {z["name"]: z["id"] for z in await reply.json()}
        posts = []
        for zone in ZONES:
            for i in range(per_zone + per_zone // 20):
                content = "198.51.100.1" if i % 20 == 7 else "192.0.2.1"  # drift
                body = {"type": "A", "name": f"h{i}", "content": content, "ttl": 300}
                posts.append((ids[zone], body | {"comment": MARK}))
        for start in range(0, len(posts), 64):
            replies = await asyncio.gather(
                *(
                    session.post(f"{url}/client/v4/zones/{zone}/dns_records", json=body)
                    for zone, body in posts[start : start + 64]
                )
            )
            for reply in replies:
                reply.release()
    return ids


async def stats(url: str) -> int:
    async with aiohttp.ClientSession() as session, session.get(url + "/__emulator/stats") as r:
        return int((await r.json())["total"])


async def measure(records: int) -> list[Row]:
    per_zone = records // len(ZONES)
    with processes.emulator(*ZONES) as emu:
        ids = await seed(emu.url, per_zone)
        before_rss = processes.peak_mib(os.getpid())
        index = DnsRecordIndex()
        index.serve(["public"], [])
        index.replace(None, [dnsrecord(z, i) for z in ZONES for i in range(per_zone)])  # type: ignore[misc]
        index.connected(None)
        clock = SystemClock()
        api = CloudflareApi(
            "cf",
            lambda: Auth(token="bench-token"),  # noqa: S106 - the emulator's token
            Budget("cf", 1_000_000, 1, clock),
            base_url=f"{emu.url}/client/v4",
            list_page=PAGE,
        )
        provider = CloudflareProvider(api, clock, locks=KeyedLocks(), versions=LocalVersions())
        account = Account("cf", provider)
        routes = [Route(ZonePolicy(zone, zone_id=ids[zone]), account) for zone in ZONES]
        client = Client("public", kind=ClientKind.DNS_CLASS, dns_class="public")
        table = RoutingTable(routes, {"public": OWNER}, Owner())
        runtime = Runtime("bench", table, (client,), {"cf": account})
        sweeper = Sweeper(
            LiveConfig(runtime),
            index,
            SweepSettings(),
            deployment=OWNER.deployment,
            clock=clock,
            turns=LocalTurns(),
        )
        try:
            calls = await stats(emu.url)
            started = time.perf_counter()
            result = await sweeper.sweep(act=False)
            seconds = time.perf_counter() - started
            calls = await stats(emu.url) - calls
        finally:
            await provider.aclose()
        peak = processes.peak_mib(os.getpid())
    held = per_zone + per_zone // 20
    pages = len(ZONES) * -(-held // PAGE)
    found = {
        kind: sum(1 for f in result.findings if f.kind.value == kind)
        for kind in ("orphan", "drift")
    }
    assert result.complete, result.zones
    return [
        Row(
            "7 dnsrecord sweep",
            f"API calls, {records} DNSRecords over 4 zones ({PAGE} a page)",
            f"{calls}",
            "",
            f"= {pages} (one listing per zone, every page)",
            "met" if calls == pages else "MISSED",
        ),
        Row(
            "7 dnsrecord sweep",
            "wall time of the sweep",
            f"{seconds * 1000:.0f} ms ({found['orphan']} orphans, {found['drift']} drift)",
        ),
        Row(
            "7 dnsrecord sweep",
            "peak RSS of the sweeping process",
            f"{peak:.0f} MiB",
            f"{before_rss:.0f} MiB before the index",
        ),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dnsrecord_sweep")
    parser.add_argument("--quick", action="store_true", help="200 DNSRecords instead of 2 000")
    args = parser.parse_args()
    rows = asyncio.run(measure(200 if args.quick else 2000))
    print("| scenario | measure | dns-sidecar | baseline (same run) | target | |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r.scenario} | {r.measure} | {r.value} | {r.baseline} | {r.target} | {r.met} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
