"""``python -m bench.soak [--seconds 180] [--replicas 3] [--writers 12]``: replicas under faults.

N real ``dns-sidecar serve`` processes share one real ``redis-server`` (with an append-only
file) and one Cloudflare emulator (in this process, so its state history and the requests'
times share a clock). Writers send random upserts and deletes, readers random GETs, over a few
names, through random replicas; read caches are on (an hour), so every fresh GET depends on
invalidation. The readers also read two names of a quiet zone that only the faults write, so
a lost invalidation is not hidden by the next write. During the run, in order:

1. Cloudflare answers three requests with 503;
2. Redis is SIGKILLed while the emulator holds an applied batch (of the quiet zone), and
   restarted with its data;
3. a replica is SIGKILLed while it holds a write lease (its batch applied, its answer held),
   and a replacement replica starts; the name is written again once the lease has expired;
4. Cloudflare answers one request with 429 (Retry-After 2), which blocks every replica;
5. Redis is SIGKILLed and restarted without its data.

Then traffic stops, the leases expire, and ``bench.soak_check`` judges every state the
provider passed through, every GET, and the final state of every name (also as each replica
shows it). It prints a summary and exits 1 on a violation. ``make soak`` runs 180 s with 3
replicas and 12 writers (5 to 6 minutes in all); the test suite runs 30 s with 2 and 4.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web

from bench.processes import REPO, free_port
from bench.soak_check import Read, State, Values, Verdict, Write, check
from sidecar.auth import signing
from sidecar.auth.signing import Algorithm
from sidecar.emulator import Emulator
from sidecar.emulator.history import History

SECRET = b"soak-hmac-secret-0123456789abcdef"
COM, ORG = "a" * 32, "b" * 32
POOL = [f"192.0.2.{i}" for i in range(1, 9)]
PING, REDIS_TIMEOUT, PROVIDER_TIMEOUT, LEASE = 0.5, 1.0, 2.0, 7.0
BOUND = PING + REDIS_TIMEOUT  # SPEC section 7: the staleness bound
SLACK = 30.0  # how late a write without a definite answer may still land (a slow provider)
QUIET = ["quiet.example.org", "held.example.org"]  # written only by the faults, read by all
NOT_SENT = ("not served", "nothing was sent")
ENV = {
    "DNS_SIDECAR_LOG_FORMAT": "json",
    "DNS_SIDECAR_REDIS_PING_INTERVAL": str(PING),
    "DNS_SIDECAR_REDIS_TIMEOUT": str(REDIS_TIMEOUT),
    "DNS_SIDECAR_PROVIDER_TIMEOUT": str(PROVIDER_TIMEOUT),
    "DNS_SIDECAR_REDIS_LOCK_LEASE": str(LEASE),
    "DNS_SIDECAR_REDIS_LOCK_WAIT": "3",
}


def routing_table(emulator_url: str) -> str:
    return f"""
version: 1
clients:
  - name: operator
    algorithm: SHA256
    secrets: [{{value: "{SECRET.decode()}"}}]
accounts:
  - name: cf
    provider: cloudflare
    apiToken: {{value: soak-token}}
    baseUrl: {emulator_url}/client/v4
    readCacheSeconds: 3600
    rateLimit: {{requests: 1000000, perSeconds: 300}}
zones:
  - {{name: example.com, account: cf, zoneId: {COM}}}
  - {{name: example.org, account: cf, zoneId: {ORG}}}
"""


class Redis:
    """``redis-server`` with an append-only file on a fixed port: killed and restarted with
    or without its data."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.directory.mkdir(exist_ok=True)
        command = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        command += ["--appendonly", "yes", "--dir", str(self.directory)]
        command += ["--logfile", str(self.directory / "redis.log")]
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL)
        end = time.monotonic() + 20
        while time.monotonic() < end:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn,
            ):
                conn.sendall(b"PING\r\n")
                if conn.recv(16).startswith(b"+PONG"):
                    return
            time.sleep(0.02)  # polling with a deadline until it answers
        raise TimeoutError("redis-server did not start")

    def kill(self, *, lose_data: bool = False) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
        if lose_data:
            for path in self.directory.glob("appendonly*"):
                shutil.rmtree(path) if path.is_dir() else path.unlink()

    def lock_keys(self) -> bytes:
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as conn:
            conn.sendall(b"KEYS dns-sidecar:lock:*\r\n")
            return conn.recv(65536)


def refused(status: int | None, answer: object) -> bool:
    """Whether the answer says the change was not sent to the provider."""
    if status is None or status == 200 or (status >= 500 and status != 503):
        return False
    if status < 500:
        return True
    error = answer.get("error") if isinstance(answer, dict) else None
    message = str(error.get("message", "")) if isinstance(error, dict) else ""
    return any(words in message for words in NOT_SENT)


async def until_true(condition: Callable[[], bool], seconds: float = 10) -> None:
    """Poll ``condition`` with a deadline (it changes in this event loop: no event to wait
    on without changing the emulator)."""
    end = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > end:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.005)


@dataclass
class Replica:
    index: int
    process: subprocess.Popen[bytes]
    url: str
    management: str

    @property
    def alive(self) -> bool:
        return self.process.poll() is None


@dataclass
class Soak:
    seconds: float
    replicas_wanted: int
    writers: int
    names: list[str]
    directory: Path
    rng: random.Random
    emulator: Emulator = field(default_factory=Emulator)
    replicas: list[Replica] = field(default_factory=list)
    writes: list[Write] = field(default_factory=list)
    reads: list[Read] = field(default_factory=list)
    outages: list[tuple[float, float]] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    emulator_url: str = ""
    started: float = 0.0
    redis: Redis | None = None

    # --- processes ----------------------------------------------------------------------

    async def start_replica(self, session: aiohttp.ClientSession) -> Replica:
        assert self.redis is not None
        index = len(self.replicas)
        port, management = free_port(), free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("DNS_")}
        env |= ENV | {"DNS_SIDECAR_REDIS_URL": self.redis.url}
        log = (self.directory / f"replica-{index}.log").open("wb")
        table = str(self.directory / "t.yaml")
        command = [sys.executable, "-m", "sidecar", "serve", "--config", table]
        process = subprocess.Popen(  # noqa: ASYNC220 - readiness is awaited below
            [*command, "--port", str(port), "--management-port", str(management)],
            env=env,
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
        log.close()
        replica = Replica(
            index, process, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{management}"
        )
        end = time.monotonic() + 60
        while time.monotonic() < end:
            if not replica.alive:
                raise RuntimeError(f"replica {index} exited; see {self.directory}")
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(replica.management + "/readyz") as reply:
                    if reply.status == 200:
                        self.replicas.append(replica)
                        return replica
            await asyncio.sleep(0.05)  # polling with a deadline until it is ready
        raise TimeoutError(f"replica {index} did not become ready")

    # --- requests -----------------------------------------------------------------------

    async def send(
        self, session: aiohttp.ClientSession, replica: Replica, method: str, path: str, body: bytes
    ) -> tuple[int | None, object]:
        headers = signing.sign(SECRET, Algorithm.SHA256, method, path, body)
        if body:
            headers["Content-Type"] = "application/json"
        try:
            async with session.request(method, replica.url + path, data=body, headers=headers) as r:
                return r.status, await r.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return None, None

    async def write(
        self, session: aiohttp.ClientSession, replica: Replica, fqdn: str, target: Values
    ) -> Write:
        sub, _, domain = fqdn.partition(".")
        if target:
            record = {"type": "A", "domain": domain, "subdomain": sub, "values": list(target)}
            body = json.dumps({"record": record, "operation": "upsert"}).encode()
            method, path = "POST", "/records"
        else:
            method, path, body = "DELETE", f"/records/A/{domain}/{sub}", b""
        start = time.time()
        status, answer = await self.send(session, replica, method, path, body)
        done = Write(
            fqdn, target, start, time.time(), status, replica.index, refused(status, answer)
        )
        self.writes.append(done)
        self.statuses[f"{'upsert' if target else 'delete'} {status or 'no answer'}"] += 1
        return done

    async def read(
        self, session: aiohttp.ClientSession, replica: Replica, fqdn: str
    ) -> Read | None:
        sub, _, domain = fqdn.partition(".")
        start = time.time()
        status, body = await self.send(session, replica, "GET", f"/records/A/{domain}/{sub}", b"")
        self.statuses[f"get {status or 'no answer'}"] += 1
        if status == 404:
            values: Values = ()
        elif status == 200 and isinstance(body, dict):
            values = tuple(sorted(body["record"]["values"]))
        else:
            return None
        return Read(fqdn, start, time.time(), values, replica.index)

    def pick(self) -> Replica:
        return self.rng.choice([r for r in self.replicas if r.alive])

    async def writer(self, session: aiohttp.ClientSession, until: float) -> None:
        for _ in range(int(self.seconds * 40)):  # bounded in count as well as in time
            if time.time() >= until:
                return
            name = self.rng.choice(self.names)
            size = self.rng.choice([0, 1, 1, 2, 2, 3])
            await self.write(session, self.pick(), name, tuple(sorted(self.rng.sample(POOL, size))))
            await asyncio.sleep(self.rng.uniform(0, 0.02))  # jitter between requests

    async def reader(self, session: aiohttp.ClientSession, until: float) -> None:
        for _ in range(int(self.seconds * 40)):
            if time.time() >= until:
                return
            got = await self.read(session, self.pick(), self.rng.choice(self.names + QUIET))
            if got is not None:
                self.reads.append(got)
            await asyncio.sleep(self.rng.uniform(0, 0.02))

    def at(self, moment: float | None = None) -> str:
        return f"+{(moment or time.time()) - self.started:5.1f} s"

    # --- faults -------------------------------------------------------------------------

    async def redis_down(
        self, session: aiohttp.ClientSession, *, lose_data: bool, under_batch: bool
    ) -> None:
        assert self.redis is not None
        if under_batch:
            pending, target = await self.held_batch(session, self.pick, QUIET[0], 1.0)
        down = time.time()
        await asyncio.to_thread(self.redis.kill, lose_data=lose_data)
        await asyncio.sleep(1.0)  # the outage
        await asyncio.to_thread(self.redis.start)
        self.outages.append((down, time.time()))
        if under_batch and not (await pending).acknowledged:
            await self.until_acknowledged(session, QUIET[0], target, LEASE + 20)
        kept = "without its data" if lose_data else "with its data"
        held = ", while a batch was held" if under_batch else ""
        self.faults.append(f"{self.at(down)} Redis restarted {kept}{held}")

    async def kill_lease_holder(self, session: aiohttp.ClientSession) -> None:
        victim = self.pick()
        pending, _ = await self.held_batch(session, lambda: victim, "held.example.org", 3.0)
        victim.process.send_signal(signal.SIGKILL)
        await asyncio.to_thread(victim.process.wait)
        await pending
        self.faults.append(f"{self.at()} replica {victim.index} SIGKILLed holding a lease")
        await self.start_replica(session)
        self.faults.append(f"{self.at()} replacement replica {len(self.replicas) - 1} ready")
        again = tuple(sorted(self.rng.sample(POOL, 1)))
        await self.until_acknowledged(session, "held.example.org", again, LEASE + 20)

    async def held_batch(
        self,
        session: aiohttp.ClientSession,
        through: Callable[[], Replica],
        name: str,
        seconds: float,
    ) -> tuple[asyncio.Task[Write], Values]:
        """A write to ``name`` (in the quiet zone) whose batch the emulator has applied and
        now holds for ``seconds``; sent again while one ends before its batch (an unchanged
        set, a 503 injected earlier)."""
        self.emulator.delay(seconds, path=f"/zones/{ORG}/dns_records/batch")
        fault = self.emulator.faults[-1]
        for _ in range(20):
            target = tuple(sorted(self.rng.sample(POOL, 2)))
            pending = asyncio.create_task(self.write(session, through(), name, target))
            ended = pending.done
            await until_true(lambda: fault not in self.emulator.faults or ended(), 30)  # noqa: B023 - awaited here, in this iteration
            if fault not in self.emulator.faults:
                return pending, target
            await pending
        raise AssertionError(f"no write to {name} reached its batch")

    async def until_acknowledged(
        self, session: aiohttp.ClientSession, name: str, target: Values, seconds: float
    ) -> None:
        """Send the write again until it is acknowledged, as the operator's reconcile loop
        does (an orphaned lease delays it; a lost version move must not make it stale)."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if (await self.write(session, self.pick(), name, target)).acknowledged:
                return
            await asyncio.sleep(0.5)  # the operator's retry interval, shortened
        raise AssertionError(f"{name} could not be written for {seconds:g} s")

    async def faults_during(self, session: aiohttp.ClientSession, started: float) -> None:
        async def at(fraction: float) -> None:
            await asyncio.sleep(max(0.0, started + fraction * self.seconds - time.time()))

        await at(0.1)
        self.emulator.fail(503, times=3)
        self.faults.append(f"{self.at()} Cloudflare 503 x3")
        await at(0.2)
        await self.redis_down(session, lose_data=False, under_batch=True)
        await at(0.35)
        await self.kill_lease_holder(session)
        await at(0.6)
        self.emulator.fail(429, retry_after=2)
        self.faults.append(f"{self.at()} Cloudflare 429, Retry-After 2")
        await at(0.75)
        await self.redis_down(session, lose_data=True, under_batch=False)

    # --- the run ------------------------------------------------------------------------

    async def run(self) -> Verdict:
        self.emulator.add_token("soak-token")
        self.emulator.state.add_zone("example.com", COM)
        self.emulator.state.add_zone("example.org", ORG)
        self.emulator.state.history = History(limit=10_000_000)
        runner = web.AppRunner(self.emulator.app(), access_log=None)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        self.emulator_url = f"http://127.0.0.1:{port}"
        (self.directory / "t.yaml").write_text(routing_table(self.emulator_url))
        self.redis = Redis(self.directory / "redis")
        await asyncio.to_thread(self.redis.start)
        timeout = aiohttp.ClientTimeout(total=20)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as session:
                for _ in range(self.replicas_wanted):
                    await self.start_replica(session)
                await self.settle(session)
                started = self.started = time.time()
                until = started + self.seconds
                readers = max(1, self.writers // 4)
                await asyncio.gather(
                    self.faults_during(session, started),
                    *(self.writer(session, until) for _ in range(self.writers)),
                    *(self.reader(session, until) for _ in range(readers)),
                )
                self.emulator.faults.clear()
                await asyncio.sleep(LEASE + BOUND)  # leases of killed writers run out
                finals = self.finals()
                final_reads = [
                    got
                    for replica in self.replicas
                    if replica.alive
                    for name in sorted(finals)
                    if (got := await self.read(session, replica, name)) is not None
                ]
        finally:
            for replica in self.replicas:
                if replica.alive:
                    replica.process.kill()
                    replica.process.wait()
            if self.redis.process is not None:
                self.redis.kill()
            await runner.cleanup()
        history = self.emulator.state.history
        if history.dropped:
            raise RuntimeError("the emulator's history dropped states; raise its limit")
        states = [
            State(f"{e['name']}", e["time"], tuple(e["values"]), e["seq"])
            for e in history.page()["entries"]
            if e["type"] == "A"
        ]
        return check(
            self.writes,
            self.reads,
            states,
            finals,
            final_reads,
            slack=SLACK,
            outages=self.outages,
            bound=BOUND,
        )

    async def settle(self, session: aiohttp.ClientSession) -> None:
        """Until every replica serves signed requests (a fresh Redis counts as lost state:
        requests signed in the second before its sentinel was written are refused once)."""
        for replica in self.replicas:
            end = time.monotonic() + 30
            while (await self.read(session, replica, "settle.example.com")) is None:
                if time.monotonic() > end:
                    raise TimeoutError(f"replica {replica.index} refuses signed requests")
                await asyncio.sleep(0.05)  # polling with a deadline
        self.statuses.clear()

    def finals(self) -> dict[str, Values]:
        names = {*self.names, *QUIET}
        found: dict[str, list[str]] = {name: [] for name in names}
        for zone in self.emulator.state.zones.values():
            for record in zone.records.values():
                if record["type"] == "A" and record["name"] in found:
                    found[record["name"]].append(record["content"])
        return {name: tuple(sorted(values)) for name, values in found.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=180, help="traffic time (default 180)")
    parser.add_argument("--replicas", type=int, default=3, help="replicas (default 3)")
    parser.add_argument("--writers", type=int, default=12, help="concurrent writers (default 12)")
    parser.add_argument("--names", type=int, default=4, help="names written (default 4)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    parser.add_argument("--dump", type=Path, help="write what was recorded here, as JSON")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    names = [f"n{i}.example.com" for i in range(args.names)]
    with tempfile.TemporaryDirectory(prefix="dns-sidecar-soak-") as tmp:
        soak = Soak(
            args.seconds, args.replicas, args.writers, names, Path(tmp), random.Random(seed)
        )
        started = time.monotonic()
        verdict = asyncio.run(soak.run())
        took = time.monotonic() - started
        if args.dump:
            recorded = {"faults": soak.faults, "writes": soak.writes, "reads": soak.reads}
            recorded["states"] = soak.emulator.state.history.page()["entries"]
            args.dump.write_text(json.dumps(recorded, default=lambda o: o.__dict__, indent=1))
        print(
            f"soak: seed {seed}, {args.replicas} replicas, {args.writers} writers, "
            f"{len(names)} names, {args.seconds:g} s of traffic ({took:.0f} s in all)"
        )
        for fault in soak.faults:
            print(f"  fault: {fault}")
        for key, count in sorted(soak.statuses.items()):
            print(f"  {key}: {count}")
        print(
            f"states checked: {verdict.states}; GETs checked: {verdict.reads} "
            f"({verdict.stale_within_bound} stale within the {BOUND:g} s bound); "
            f"names: {verdict.names}"
        )
        print(f"violations: {len(verdict.violations)}")
        for violation in verdict.violations[:20]:
            print(f"  {violation}")
        if verdict.violations:
            for log in sorted(Path(tmp).glob("replica-*.log")):
                print(f"--- {log.name} (tail)")
                print("\n".join(log.read_text(errors="replace").splitlines()[-5:]))
    sys.exit(1 if verdict.violations else 0)


if __name__ == "__main__":
    main()
