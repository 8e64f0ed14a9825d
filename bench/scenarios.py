"""The five scenarios of the benchmark. Each returns rows for the one table."""

from __future__ import annotations

import asyncio
import json
import random
import tempfile
import time
import tracemalloc
import uuid
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp import web

from bench import load, processes
from bench.load import SECRET, Result
from sidecar.auth.hmac import Algorithm
from sidecar.auth.replay import ReplayCache
from tests.fake_kube import FakeKube

MARK = "managed by dns-sidecar"
ZONES = ("zone1.example", "zone2.example", "zone3.example", "zone4.example")


@dataclass
class Row:
    scenario: str
    measure: str
    value: str
    baseline: str = ""
    target: str = ""
    met: str = ""


@dataclass(frozen=True)
class Sizes:
    ops: int  # requests per operation at concurrency 64
    ops_serial: int  # ... at concurrency 1
    cf_ops: int
    cf_slow_ops: int
    sweep: int  # records in the sweep
    soak: int  # requests before the "after load" RSS reading
    replay: int  # nonces for the bytes-per-entry figure
    reloads: int


FULL = Sizes(
    ops=5000,
    ops_serial=1000,
    cf_ops=1000,
    cf_slow_ops=128,
    sweep=2000,
    soak=100_000,
    replay=100_000,
    reloads=5,
)
QUICK = Sizes(
    ops=100, ops_serial=30, cf_ops=30, cf_slow_ops=8, sweep=40, soak=300, replay=2000, reloads=1
)


def _met(ok: bool) -> str:
    return "met" if ok else "MISSED"


def _ms(value: float) -> str:
    return f"{value:.2f} ms"


def _rps(result: Result) -> str:
    return f"{result.rps:,.0f} req/s"


async def throughput(sizes: Sizes) -> list[Row]:
    """Scenario 1: signed requests on the memory provider against a bare aiohttp handler."""
    rows: list[Row] = []
    ops = {"upsert": load.upsert, "get": load.get, "delete": load.delete}
    with processes.bare() as bare, processes.sidecar(env={"HMAC_SECRET": SECRET.decode()}) as sc:
        for concurrency, count in ((1, sizes.ops_serial), (64, sizes.ops)):
            for name, make in ops.items():
                ceiling = await load.run(bare.url, make, count, concurrency)
                ours = await load.run(
                    sc.url, make, count, concurrency, ok=lambda status: status < 400
                )
                assert ours.errors == 0, f"{name}: {ours.errors} failed requests"
                ratio = ours.rps / ceiling.rps
                target, met = "", ""
                if concurrency == 64:
                    target, met = ">= 50 % of bare", _met(ratio >= 0.5)
                rows.append(
                    Row(
                        "1 memory",
                        f"{name} c={concurrency} throughput",
                        f"{_rps(ours)} ({ratio:.0%} of bare)",
                        _rps(ceiling),
                        target,
                        met,
                    )
                )
                target = "< 10 ms" if concurrency == 1 else ""
                met = _met(ours.p99 < 10) if concurrency == 1 else ""
                rows.append(
                    Row(
                        "1 memory",
                        f"{name} c={concurrency} p50 / p99",
                        f"{_ms(ours.p50)} / {_ms(ours.p99)}",
                        f"{_ms(ceiling.p50)} / {_ms(ceiling.p99)}",
                        target,
                        met,
                    )
                )
    return rows


def _cloudflare_table(emulator_url: str, *, read_cache: float = 0.0) -> str:
    zones = "".join(f"  - {{name: {zone}, account: cf}}\n" for zone in ("example.com", *ZONES))
    return (
        "version: 1\naccounts:\n"
        f"  - name: cf\n    provider: cloudflare\n    apiToken: {{value: bench-token}}\n"
        f"    baseUrl: {emulator_url}/client/v4\n"
        f"    rateLimit: {{requests: 100000000, perSeconds: 1}}\n"
        f"    readCacheSeconds: {read_cache}\n"
        f"zones:\n{zones}"
    )


async def _post(session: aiohttp.ClientSession, url: str, body: object) -> None:
    async with session.post(url, json=body) as reply:
        await reply.read()


async def _stats(session: aiohttp.ClientSession, url: str) -> int:
    async with session.get(url + "/__emulator/stats") as reply:
        return int((await reply.json())["total"])


async def cloudflare(sizes: Sizes, tmp: Path) -> list[Row]:
    """Scenario 2: the Cloudflare provider against the emulator, 0 and 50 ms added latency."""
    rows: list[Row] = []
    with processes.emulator("example.com", *ZONES) as emu:
        table = tmp / "cf.yaml"
        table.write_text(_cloudflare_table(emu.url))
        env = {"HMAC_SECRET": SECRET.decode()}
        with processes.sidecar("--config", str(table), env=env) as sc:
            async with aiohttp.ClientSession() as session:
                for latency in (0.0, 0.05):
                    await _post(session, emu.url + "/__emulator/faults", {"latency": latency})
                    for concurrency in (1, 64):
                        count = sizes.cf_ops if latency == 0 else sizes.cf_slow_ops
                        if concurrency == 1:
                            count = max(4, count // 8)
                        offset = int(latency * 1000) * 100_000 + concurrency * 1000

                        def make(i: int, offset: int = offset) -> load.Request:
                            return load.upsert(i + offset)

                        result = await load.run(
                            sc.url, make, count, concurrency, ok=lambda status: status < 400
                        )
                        assert result.errors == 0, f"{result.errors} failed upserts"
                        rows.append(
                            Row(
                                "2 cloudflare",
                                f"upsert +{latency * 1000:.0f} ms c={concurrency}",
                                f"{_rps(result)}, p50 {_ms(result.p50)}, p99 {_ms(result.p99)}",
                            )
                        )
            rows.append(
                Row(
                    "4 memory",
                    "RSS, Cloudflare account (SDK loaded), after scenario 2",
                    f"{sc.rss:.0f} MiB",
                    target="< 128 MiB",
                    met=_met(sc.rss < 128),
                )
            )
    return rows


async def sweep(sizes: Sizes, tmp: Path) -> list[Row]:
    """Scenario 3: a reconcile sweep of GETs over 4 zones, with and without the read cache."""
    rows: list[Row] = []
    with processes.emulator(*ZONES) as emu:
        async with aiohttp.ClientSession() as session:
            async with session.get(emu.url + "/__emulator/zones") as reply:
                zone_ids = {z["name"]: z["id"] for z in await reply.json()}
            headers = {"Authorization": "Bearer bench-token"}
            per_zone = sizes.sweep // len(ZONES)
            seeded = [
                session.post(
                    f"{emu.url}/client/v4/zones/{zone_ids[zone]}/dns_records",
                    json={
                        "type": "A",
                        "name": f"h{i}",
                        "content": "192.0.2.1",
                        "ttl": 300,
                        "comment": MARK,
                    },
                    headers=headers,
                )
                for zone in ZONES
                for i in range(per_zone)
            ]
            for batch in range(0, len(seeded), 64):
                for reply in await asyncio.gather(*seeded[batch : batch + 64]):
                    reply.release()

            def make(i: int) -> load.Request:
                return load.get(i // len(ZONES), ZONES[i % len(ZONES)])

            for cache in (0.0, 60.0):
                table = tmp / f"sweep-{cache}.yaml"
                table.write_text(_cloudflare_table(emu.url, read_cache=cache))
                with processes.sidecar("--config", str(table)) as sc:
                    before = await _stats(session, emu.url)
                    result = await load.run(
                        sc.url,
                        make,
                        per_zone * len(ZONES),
                        16,
                        secret=None,
                        ok=lambda status: status == 200,
                    )
                    assert result.errors == 0, f"{result.errors} GETs did not find their record"
                    calls = await _stats(session, emu.url) - before
                label = "with read cache" if cache else "without read cache"
                target = f"<= {2 * len(ZONES)} (a lookup and a listing per zone)" if cache else ""
                met = _met(calls <= 2 * len(ZONES)) if cache else ""
                rows.append(
                    Row(
                        "3 sweep",
                        f"{sizes.sweep} GETs, 4 zones, {label}",
                        f"{calls} API calls, {result.seconds:.2f} s",
                        "",
                        target,
                        met,
                    )
                )
    return rows


async def memory(sizes: Sizes) -> list[Row]:
    """Scenario 4: RSS idle and after load, replay-cache bytes per entry, start-up time."""
    rows: list[Row] = []
    env = {"HMAC_SECRET": SECRET.decode()}
    with processes.sidecar(env=env) as sc:
        idle = sc.rss
        rows.append(
            Row(
                "4 memory",
                "RSS idle, embedded default",
                f"{idle:.0f} MiB",
                target="< 100 MiB",
                met=_met(idle < 100),
            )
        )
        rows.append(
            Row(
                "4 memory",
                "start-up to /readyz 200, embedded default",
                f"{sc.ready_seconds:.2f} s",
                target="< 2 s",
                met=_met(sc.ready_seconds < 2),
            )
        )

        def mixed(i: int) -> load.Request:
            return (load.upsert, load.get, load.delete)[i % 3](i // 3 % 5000)

        await load.run(sc.url, mixed, sizes.soak, 64, ok=lambda status: status < 400)
        after = sc.rss
        rows.append(
            Row(
                "4 memory",
                f"RSS after {sizes.soak:,} signed requests",
                f"{after:.0f} MiB",
                f"idle {idle:.0f} MiB",
                "< 128 MiB",
                _met(after < 128),
            )
        )
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    cache = ReplayCache(sizes.replay)
    now = time.time()
    for _ in range(sizes.replay):  # each nonce string is counted: the cache keeps it
        cache.add(str(uuid.uuid4()), now + 300 * random.random(), now)
    per_entry = (tracemalloc.get_traced_memory()[0] - base) / len(cache)
    tracemalloc.stop()
    rows.append(
        Row(
            "4 memory",
            f"replay cache, {sizes.replay:,} UUID nonces",
            f"{per_entry:.0f} bytes/entry (nonce string included)",
            "",
            "< 300 bytes",
            _met(per_entry < 300),
        )
    )
    return rows


def _routing(zone: str) -> str:
    return (
        "version: 1\nclients:\n  - name: op\n    algorithm: SHA256\n"
        "    secrets: [{secretRef: {name: hmac, key: secret}}]\n"
        "accounts: [{name: m, provider: memory}]\n"
        f"zones: [{{name: {zone}, account: m}}]\n"
    )


async def reload(sizes: Sizes, tmp: Path) -> list[Row]:
    """Scenario 5: ConfigMap swap -> new table answering; Secret change -> new secret in use."""
    fake = FakeKube()
    fake.set_secret("default", "hmac", {"secret": "first"})
    runner = web.AppRunner(fake.app())
    await runner.setup()
    port = processes.free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    kubeconfig = fake.kubeconfig(tmp / "kubeconfig", port)
    root = tmp / "configmap"
    root.mkdir()
    (root / "routing.yaml").symlink_to("..data/routing.yaml")

    def publish(n: int, text: str) -> None:
        version = root / f"..v{n}"
        version.mkdir()
        (version / "routing.yaml").write_text(text)
        (root / "..tmp").symlink_to(version.name)
        (root / "..tmp").replace(root / "..data")

    publish(0, _routing("zone0.example"))
    swaps: list[float] = []
    rotations: list[float] = []
    env = {
        "DNS_SIDECAR_KUBECONFIG": str(kubeconfig),
        "DNS_SIDECAR_NAMESPACE": "default",
        "DNS_SIDECAR_RELOAD_DEBOUNCE_MS": "50",
    }
    try:
        with processes.sidecar("--config", str(root / "routing.yaml"), env=env) as sc:
            secret = b"first"
            for n in range(1, sizes.reloads + 1):
                started = time.perf_counter()
                publish(n, _routing(f"zone{n}.example"))
                swaps.append(
                    await _until(sc.url, load.get(0, f"zone{n}.example"), secret, 404) - started
                )
                started = time.perf_counter()
                secret = f"secret-{n}".encode()
                fake.set_secret("default", "hmac", {"secret": secret.decode()})
                rotations.append(
                    await _until(sc.url, ("GET", "/health", b""), secret, 200) - started
                )
    finally:
        fake.drop_watches()
        await runner.cleanup()
    worst_swap, worst_rotation = max(swaps), max(rotations)
    return [
        Row(
            "5 reload",
            f"ConfigMap ..data swap -> new table answering ({len(swaps)}x)",
            f"median {sorted(swaps)[len(swaps) // 2] * 1000:.0f} ms, "
            f"max {worst_swap * 1000:.0f} ms",
            "",
            "< 1 s",
            _met(worst_swap < 1),
        ),
        Row(
            "5 reload",
            f"Secret update -> new HMAC secret accepted ({len(rotations)}x)",
            f"median {sorted(rotations)[len(rotations) // 2] * 1000:.0f} ms, "
            f"max {worst_rotation * 1000:.0f} ms",
            "",
            "< 1 s",
            _met(worst_rotation < 1),
        ),
    ]


async def _until(base: str, request: load.Request, secret: bytes, status: int) -> float:
    """Poll (signed) until the answer has ``status``; returns the perf_counter at success."""
    method, path, body = request
    deadline = time.perf_counter() + 30
    async with aiohttp.ClientSession() as session:
        while time.perf_counter() < deadline:
            headers = load.hmac.sign(secret, Algorithm.SHA256, method, path, body)
            async with session.request(
                method, base + path, data=body or None, headers=headers
            ) as reply:
                await reply.read()
                if reply.status == status:
                    return time.perf_counter()
            await asyncio.sleep(0.002)
    raise TimeoutError(f"{method} {path} never answered {status}")


async def run_all(sizes: Sizes) -> list[Row]:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="dns-sidecar-bench-") as tmp_name:
        tmp = Path(tmp_name)
        rows += await throughput(sizes)
        rows += await cloudflare(sizes, tmp)
        rows += await sweep(sizes, tmp)
        rows += await memory(sizes)
        rows += await reload(sizes, tmp)
    return rows


def as_json(rows: list[Row]) -> str:
    return json.dumps([row.__dict__ for row in rows], indent=1)
