"""The scenarios of the benchmark (1-5 here, 6 in ``bench.bare_mx``, 7 in ``bench.https``,
8 in ``bench.rfc2136``; the DNSRecord sweep is its own command, ``bench.dnsrecord_sweep``).
Each returns rows for the one table."""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from bench import load, presigned, processes, wrk
from bench.load import Result
from sidecar.auth import signing
from sidecar.auth.replay import ReplayCache
from sidecar.auth.signing import Algorithm

MARK = "managed by dns-sidecar"
# The bare handler's CPU per request on the quiet machine the issue set its 120 us target on;
# on this shared machine the same handler takes 65-130 us from one minute to the next.
QUIET_BARE_US = 63
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
    rounds: int  # alternating rounds, bare handler then sidecar
    mix: int  # requests per round at concurrency 64
    mix_serial: int  # ... at concurrency 1
    cf_ops: int
    cf_slow_ops: int
    sweep: int  # records in the sweep
    soak: int  # requests before the "after load" RSS reading
    replay: int  # nonces for the bytes-per-entry figure
    reloads: int


FULL = Sizes(
    rounds=7,  # short rounds: this machine's speed changes within seconds
    mix=10_000,  # all rounds stay under the replay cache's 100 000 nonces in 300 s
    mix_serial=1500,
    cf_ops=1000,
    cf_slow_ops=128,
    sweep=2000,
    soak=100_000,
    replay=100_000,
    reloads=5,
)
QUICK = Sizes(
    rounds=1,
    mix=200,
    mix_serial=50,
    cf_ops=30,
    cf_slow_ops=8,
    sweep=40,
    soak=300,
    replay=2000,
    reloads=1,
)


def _met(ok: bool) -> str:
    return "met" if ok else "MISSED"


def _ms(value: float) -> str:
    return f"{value:.2f} ms"


def _rps(result: Result) -> str:
    return f"{result.rps:,.0f} req/s"


def throughput(sizes: Sizes, tmp: Path) -> list[Row]:
    """Scenario 1: the signed 50/50 upsert/GET mix on the memory provider, driven by wrk,
    against the bare aiohttp handler in alternating rounds of the same run (and the same
    handler on aiohttp's low-level server, the floor of the sidecar's own stack)."""
    results: dict[tuple[str, int], list[wrk.Run]] = {}
    env = {"HMAC_SECRET": presigned.SECRET.decode()}
    with (
        processes.bare() as bare,
        processes.bare(low_level=True) as floor,
        processes.sidecar(env=env) as sc,
    ):
        host = f"127.0.0.1:{sc.port}"
        seed = tmp / "seed.req"
        presigned.write(seed, presigned.upsert, presigned.NAMES, host, run="seed")
        answered = wrk.run(sc.url, seed, 8, sc.pid).requests  # also the warm-up
        for round_ in range(sizes.rounds):
            for connections, count in ((64, sizes.mix), (1, sizes.mix_serial)):
                for name, proc in (("bare", bare), ("floor", floor), ("sidecar", sc)):
                    requests = tmp / f"{name}.req"
                    presigned.write(
                        requests, presigned.mix, count, host, run=f"{round_}-{connections}"
                    )
                    result = wrk.run(proc.url, requests, connections, proc.pid)
                    assert result.errors == 0, f"{name}: {result.errors} failed requests"
                    results.setdefault((name, connections), []).append(result)
                    answered += result.requests if proc is sc else 0
                    print(
                        f"round {round_ + 1} {name:7} c={connections:<2} {result.rps:8,.0f} req/s"
                        f" {result.cpu_us:6.0f} us CPU/request, p99 {result.p99_ms:.2f} ms"
                    )
        logged = processes.access_lines(sc)  # the access log was on, one line per request
        assert logged >= answered, f"{logged} access-log lines for {answered} requests"
    ours, ceiling, floor = results["sidecar", 64], results["bare", 64], results["floor", 64]
    rps, bare_rps = _median(r.rps for r in ours), _median(r.rps for r in ceiling)
    cpu, bare_cpu = _median(r.cpu_us for r in ours), _median(r.cpu_us for r in ceiling)
    floor_cpu = _median(r.cpu_us for r in floor)
    # the ratios are taken round by round (the runs next to each other), then their median
    rps_ratio = _median(a.rps / b.rps for a, b in zip(ours, ceiling, strict=True))
    cpu_ratio = _median(a.cpu_us / b.cpu_us for a, b in zip(ours, ceiling, strict=True))
    floor_ratio = _median(a.cpu_us / b.cpu_us for a, b in zip(ours, floor, strict=True))
    serial, bare_serial = results["sidecar", 1], results["bare", 1]
    p50, p99 = _median(r.p50_ms for r in serial), _median(r.p99_ms for r in serial)
    bare_p50, bare_p99 = (
        _median(r.p50_ms for r in bare_serial),
        _median(r.p99_ms for r in bare_serial),
    )
    mix = "50/50 upsert/GET"
    return [
        Row(
            "1 memory",
            f"{mix} c=64 throughput",
            f"{rps:,.0f} req/s ({rps_ratio:.2f}x bare)",
            f"{bare_rps:,.0f} req/s",
            ">= 0.5x bare",
            _met(rps_ratio >= 0.5),
        ),
        Row(
            "1 memory",
            f"{mix} c=64 server CPU per request",
            f"{cpu:.0f} us ({cpu_ratio:.2f}x bare)",
            f"{bare_cpu:.0f} us",
            "<= 120 us",
            _met(cpu <= 120),
        ),
        Row(
            "1 memory",
            f"{mix} c=64 server CPU per request, scaled to the machine the target was set on "
            f"(the ratio above x the bare handler's {QUIET_BARE_US} us there)",
            f"{cpu_ratio * QUIET_BARE_US:.0f} us",
            f"{QUIET_BARE_US} us",
            "<= 120 us",
            _met(cpu_ratio * QUIET_BARE_US <= 120),
        ),
        Row(
            "1 memory",
            f"{mix} c=64 server CPU per request, against the same handler on aiohttp's "
            "low-level server (the sidecar's stack)",
            f"{cpu:.0f} us ({floor_ratio:.2f}x)",
            f"{floor_cpu:.0f} us",
        ),
        Row(
            "1 memory",
            f"{mix} c=1 p50 / p99",
            f"{_ms(p50)} / {_ms(p99)}",
            f"{_ms(bare_p50)} / {_ms(bare_p99)}",
            "p99 <= 1 ms",
            _met(p99 <= 1),
        ),
    ]


def _median(values: Iterable[float]) -> float:
    return statistics.median(values)


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
        env = {"HMAC_SECRET": presigned.SECRET.decode()}
        with processes.sidecar("--config", str(table), env=env) as sc:
            async with aiohttp.ClientSession() as session:
                for latency in (0.0, 0.05):
                    await _post(session, emu.url + "/__emulator/faults", {"latency": latency})
                    for concurrency in (1, 64):
                        count = sizes.cf_ops if latency == 0 else sizes.cf_slow_ops
                        if concurrency == 1:
                            count = max(4, count // 8)
                        offset = int(latency * 1000) * 100_000 + concurrency * 1000

                        def make(i: int, offset: int = offset) -> presigned.Request:
                            return presigned.upsert(i + offset)

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

            def make(i: int) -> presigned.Request:
                return presigned.get(i // len(ZONES), ZONES[i % len(ZONES)])

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


def memory(sizes: Sizes, tmp: Path) -> list[Row]:
    """Scenario 4: RSS idle and after load, replay-cache bytes per entry, start-up time."""
    rows: list[Row] = []
    env = {"HMAC_SECRET": presigned.SECRET.decode()}
    with processes.sidecar(env=env) as sc:
        idle = sc.rss
        rows.append(
            Row(
                "4 memory",
                "RSS idle, embedded default",
                f"{idle:.0f} MiB",
                target="<= 60 MiB",
                met=_met(idle <= 60),
            )
        )
        rows.append(
            Row(
                "4 memory",
                "start-up to /readyz 200, embedded default",
                f"{sc.ready_seconds:.2f} s",
                target="<= 1 s",
                met=_met(sc.ready_seconds <= 1),
            )
        )
        requests = presigned.write(
            tmp / "soak.req", presigned.soak, sizes.soak, f"127.0.0.1:{sc.port}", run="soak"
        )
        soaked = wrk.run(sc.url, requests, 64, sc.pid)  # a GET after its delete answers 404
        assert soaked.requests >= sizes.soak - 65, (
            f"only {soaked.requests} answered"
        )  # 64 in flight
        peak = processes.peak_mib(sc.pid)
        rows.append(
            Row(
                "4 memory",
                f"peak RSS after {sizes.soak:,} signed requests",
                f"{peak:.0f} MiB",
                f"idle {idle:.0f} MiB",
                "< 128 MiB",
                _met(peak < 128),
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


def _routing(zone: str, secret_file: Path) -> str:
    return (
        "version: 1\nclients:\n  - name: op\n    algorithm: SHA256\n"
        f"    secrets: [{{file: {secret_file}}}]\n"
        "accounts: [{name: m, provider: memory}]\n"
        f"zones: [{{name: {zone}, account: m}}]\n"
    )


def _mounted(root: Path, name: str) -> Path:
    """A directory the kubelet way (ConfigMap or Secret volume): ``name`` -> ``..data/name``."""
    root.mkdir()
    (root / name).symlink_to(f"..data/{name}")
    return root / name


def _publish(root: Path, version: str, name: str, text: str) -> None:
    """The kubelet's atomic update: a new version directory, then one ``..data`` rename."""
    directory = root / f"..{version}"
    directory.mkdir()
    (directory / name).write_text(text)
    (root / "..tmp").symlink_to(directory.name)
    (root / "..tmp").replace(root / "..data")


async def reload(sizes: Sizes, tmp: Path) -> list[Row]:
    """Scenario 5: ConfigMap swap -> new table answering; mounted Secret rotated -> new secret
    in use (a Secret volume: the kubelet swaps it like a ConfigMap)."""
    configmap, secret_volume = tmp / "configmap", tmp / "secret"
    table = _mounted(configmap, "routing.yaml")
    secret_file = _mounted(secret_volume, "hmac-secret")
    _publish(secret_volume, "s0", "hmac-secret", "first")
    _publish(configmap, "v0", "routing.yaml", _routing("zone0.example", secret_file))
    swaps: list[float] = []
    rotations: list[float] = []
    env = {"DNS_SIDECAR_RELOAD_DEBOUNCE_MS": "50"}
    with processes.sidecar("--config", str(table), env=env) as sc:
        secret = b"first"
        for n in range(1, sizes.reloads + 1):
            started = time.perf_counter()
            _publish(configmap, f"v{n}", "routing.yaml", _routing(f"zone{n}.example", secret_file))
            swaps.append(
                await _until(sc.url, presigned.get(0, f"zone{n}.example"), secret, 404) - started
            )
            started = time.perf_counter()
            secret = f"secret-{n}".encode()
            _publish(secret_volume, f"s{n}", "hmac-secret", secret.decode())
            rotations.append(await _until(sc.url, ("GET", "/health", b""), secret, 200) - started)
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
            f"Secret volume update -> new HMAC secret accepted ({len(rotations)}x)",
            f"median {sorted(rotations)[len(rotations) // 2] * 1000:.0f} ms, "
            f"max {worst_rotation * 1000:.0f} ms",
            "",
            "< 1 s",
            _met(worst_rotation < 1),
        ),
    ]


async def _until(base: str, request: presigned.Request, secret: bytes, status: int) -> float:
    """Poll (signed) until the answer has ``status``; returns the perf_counter at success."""
    method, path, body = request
    deadline = time.perf_counter() + 30
    async with aiohttp.ClientSession() as session:
        while time.perf_counter() < deadline:
            headers = signing.sign(secret, Algorithm.SHA256, method, path, body)
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
        rows += throughput(sizes, tmp)
        rows += await cloudflare(sizes, tmp)
        rows += await sweep(sizes, tmp)
        rows += memory(sizes, tmp)
        rows += await reload(sizes, tmp)
        from bench.bare_mx import bare_mx  # noqa: PLC0415 - it imports this module

        rows += await bare_mx(sizes, tmp)
        from bench.https import https  # noqa: PLC0415 - it builds on this module's Row and Sizes

        rows += https(sizes, tmp)

        from bench.rfc2136 import rfc2136  # noqa: PLC0415 - it imports this module's helpers

        rows += await rfc2136(sizes, tmp)
    return rows


def as_json(rows: list[Row]) -> str:
    return json.dumps([row.__dict__ for row in rows], indent=1)
