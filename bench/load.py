"""A Python load generator, for the Cloudflare scenarios (wrk drives the memory provider):
signed requests, fixed count, fixed concurrency; latencies per request."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp

from bench.presigned import SECRET, Request
from sidecar.auth import signing
from sidecar.auth.signing import Algorithm


@dataclass
class Result:
    count: int
    seconds: float
    latencies: list[float]
    errors: int

    @property
    def rps(self) -> float:
        return self.count / self.seconds

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies) * 1000

    @property
    def p99(self) -> float:
        return self.percentile(0.99)


async def run(
    base: str,
    make: Callable[[int], Request],
    count: int,
    concurrency: int,
    *,
    secret: bytes | None = SECRET,
    algorithm: Algorithm = Algorithm.SHA256,
    ok: Callable[[int], bool] = lambda status: status < 500,
) -> Result:
    latencies: list[float] = []
    errors = 0
    queue = iter(range(count))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal errors
            for i in queue:
                method, path, body = make(i)
                headers = {"Content-Type": "application/json"} if body else {}
                if secret is not None:
                    headers |= signing.sign(secret, algorithm, method, path, body)
                started = time.perf_counter()
                async with session.request(
                    method, base + path, data=body or None, headers=headers
                ) as reply:
                    await reply.read()
                    errors += not ok(reply.status)
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    return Result(count, seconds, latencies, errors)
