"""``python -m bench.redis_overhead [--quick]``: what shared state on Redis costs per request.

Measured in one run on loopback, each time with and without ``DNS_SIDECAR_REDIS_URL`` (a
``redis-server`` started here on a free port, without persistence): the p50 and p99 latency of
one signed request (GET on the memory provider: the replay check is the whole difference), and
of one upsert through the Cloudflare emulator (replay check, lease lock, budget, unlock).
Requests are sent one at a time, so the figures are latencies, not throughput. The sidecar runs
as it ships (``bench.processes``): HMAC on, metrics on, the access log at INFO into a file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp

from bench import processes
from sidecar.auth import signing
from sidecar.auth.signing import Algorithm

SECRET = b"bench-redis-secret-0123456789abcdef"


def table_text(emulator_url: str) -> str:
    return f"""
version: 1
clients:
  - name: operator
    algorithm: SHA256
    secrets: [{{value: "{SECRET.decode()}"}}]
accounts:
  - name: cf
    provider: cloudflare
    apiToken: {{value: bench-token}}
    baseUrl: {emulator_url}/client/v4
    rateLimit: {{requests: 1000000, perSeconds: 300}}
  - name: mem
    provider: memory
zones:
  - name: example.com
    account: cf
  - name: example.net
    account: mem
"""


async def settled(base: str) -> None:
    """Until signed requests pass: a fresh Redis counts as lost state, so requests signed in
    the second before its sentinel was written are refused once."""
    end = time.monotonic() + 30
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < end:
            path = "/records/A/example.net/absent"
            headers = signing.sign(SECRET, Algorithm.SHA256, "GET", path)
            async with session.get(base + path, headers=headers) as reply:
                if reply.status == 404:
                    return
            await asyncio.sleep(0.05)  # polling with a deadline
    raise TimeoutError("signed requests are still refused")


async def latencies(base: str, count: int, *, upsert: bool) -> list[float]:
    found: list[float] = []
    async with aiohttp.ClientSession() as session:
        for i in range(count):
            if upsert:
                method, path = "POST", "/records"
                record = {"type": "A", "domain": "example.com", "subdomain": "bench"}
                record["values"] = [f"192.0.2.{i % 2 + 1}"]  # type: ignore[assignment]
                body = json.dumps({"record": record, "operation": "upsert"}).encode()
            else:
                method, path, body = "GET", "/records/A/example.net/absent", b""
            headers = signing.sign(SECRET, Algorithm.SHA256, method, path, body)
            if body:
                headers["Content-Type"] = "application/json"
            started = time.perf_counter()
            async with session.request(method, base + path, data=body, headers=headers) as r:
                await r.read()
                assert r.status in (200, 404), r.status
            found.append(time.perf_counter() - started)
    return found


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny counts, to keep it working")
    args = parser.parse_args()
    signed, upserts = (30, 10) if args.quick else (2000, 400)
    rows = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-redis-") as tmp,
        processes.emulator("example.com") as emulator,
        processes.redis_server(Path(tmp)) as url,
    ):
        config = Path(tmp) / "routing.yaml"
        config.write_text(table_text(emulator.url))
        for label, redis_url in (("without Redis", None), ("with Redis", url)):
            env = {"DNS_SIDECAR_REDIS_URL": redis_url} if redis_url else {}
            with processes.sidecar("--config", str(config), env=env) as sc:
                asyncio.run(settled(sc.url))
                asyncio.run(latencies(sc.url, 20, upsert=False))  # warm up
                asyncio.run(latencies(sc.url, 2, upsert=True))  # and the zone id looked up
                get = asyncio.run(latencies(sc.url, signed, upsert=False))
                put = asyncio.run(latencies(sc.url, upserts, upsert=True))
                logged = processes.access_lines(sc)
            if logged < signed + upserts:  # the access log was on, one line per request
                raise RuntimeError(f"{label}: {logged} access-log lines, expected one a request")
            rows.append((label, get, put))
    print("| configuration | signed GET p50 | p99 | upsert p50 | p99 |")
    print("|---|---|---|---|---|")
    for label, get, put in rows:
        print(
            f"| {label} | {p(get, 0.5):.2f} ms | {p(get, 0.99):.2f} ms | "
            f"{p(put, 0.5):.2f} ms | {p(put, 0.99):.2f} ms |"
        )
    (_, get0, put0), (_, get1, put1) = rows
    print(
        f"\nRedis adds {p(get1, 0.5) - p(get0, 0.5):.2f} ms p50 per signed request "
        f"(target <= 1 ms) and {p(put1, 0.5) - p(put0, 0.5):.2f} ms p50 per upsert."
    )
    print(f"({statistics.fmean(get1) * 1000:.2f} ms mean signed request with Redis.)")


if __name__ == "__main__":
    main()
