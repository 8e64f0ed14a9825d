"""``python -m bench.redis_overhead [--quick]``: what shared state on Redis costs per request.

Measured in one run on loopback, each time with and without ``DNS_SIDECAR_REDIS_URL`` (a
``redis-server`` started here on a free port, without persistence): the p50 and p99 latency of
one signed request (GET on the memory provider: the replay check is the whole difference), and
of one upsert through the Cloudflare emulator (replay check, lease lock, budget, unlock).
Requests are sent one at a time, so the figures are latencies, not throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import aiohttp

from sidecar.auth import signing
from sidecar.auth.signing import Algorithm

REPO = Path(__file__).resolve().parent.parent
SECRET = b"bench-redis-secret-0123456789abcdef"
ZONE_ID = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: object, deadline: float = 30.0) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        with contextlib.suppress(OSError):
            if check():  # type: ignore[operator]
                return
        time.sleep(0.01)  # polling with a deadline
    raise TimeoutError("not ready")


def http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=1) as reply:
        return bool(reply.status == 200)


@contextlib.contextmanager
def process(command: list[str], env: dict[str, str] | None = None) -> Iterator[None]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DNS_SIDECAR_", "HMAC_"))}
    base |= {"DNS_SIDECAR_LOG_LEVEL": "WARNING", "DNS_SIDECAR_LOG_FORMAT": "json"}
    proc = subprocess.Popen(
        command,
        env=base | (env or {}),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextlib.contextmanager
def redis_server(directory: Path) -> Iterator[str]:
    port = free_port()
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    command += ["--appendonly", "no", "--dir", str(directory)]

    def pong() -> bool:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")

    with process(command):
        wait_until(pong)
        yield f"redis://127.0.0.1:{port}/0"


@contextlib.contextmanager
def sidecar(config: Path, redis_url: str | None) -> Iterator[str]:
    port, management = free_port(), free_port()
    command = [sys.executable, "-m", "sidecar", "serve", "--config", str(config)]
    command += ["--port", str(port), "--management-port", str(management)]
    env = {"DNS_SIDECAR_REDIS_URL": redis_url} if redis_url else {}
    with process(command, env):
        wait_until(lambda: http_ok(f"http://127.0.0.1:{management}/readyz"))
        yield f"http://127.0.0.1:{port}"


def table_text(emulator_port: int) -> str:
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
    baseUrl: http://127.0.0.1:{emulator_port}/client/v4
    rateLimit: {{requests: 1000000, perSeconds: 300}}
  - name: mem
    provider: memory
zones:
  - name: example.com
    account: cf
    zoneId: {ZONE_ID}
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
    with tempfile.TemporaryDirectory(prefix="bench-redis-") as tmp:
        directory = Path(tmp)
        emulator_port = free_port()
        emulator = [sys.executable, "-m", "sidecar", "cloudflare-emulator"]
        emulator += ["--port", str(emulator_port), "--token", "bench-token", "--zone"]
        emulator += ["example.com"]
        config = directory / "routing.yaml"
        with process(emulator), redis_server(directory) as url:
            wait_until(lambda: http_ok(f"http://127.0.0.1:{emulator_port}/__emulator/stats"))
            zones = json.loads(
                urllib.request.urlopen(
                    f"http://127.0.0.1:{emulator_port}/__emulator/zones", timeout=5
                ).read()
            )
            zone_id = _zone_id(zones)
            config.write_text(table_text(emulator_port).replace(ZONE_ID, zone_id))
            for label, redis_url in (("without Redis", None), ("with Redis", url)):
                with sidecar(config, redis_url) as base:
                    asyncio.run(settled(base))
                    asyncio.run(latencies(base, 20, upsert=False))  # warm up
                    get = asyncio.run(latencies(base, signed, upsert=False))
                    put = asyncio.run(latencies(base, upserts, upsert=True))
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


def _zone_id(listing: object) -> str:
    zones = listing.get("zones", listing) if isinstance(listing, dict) else listing
    for zone in zones if isinstance(zones, list) else []:
        if isinstance(zone, dict) and zone.get("name") == "example.com":
            return str(zone["id"])
    raise RuntimeError(f"no example.com zone in {listing!r}")


if __name__ == "__main__":
    main()
