"""Shared fixtures: a real sidecar on a loopback port, and a caller that signs like the operator."""

from __future__ import annotations

import asyncio
import io
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from multidict import CIMultiDict

from sidecar.app import LIVE, MANAGEMENT, create_app
from sidecar.auth import signing
from sidecar.auth.signing import Algorithm
from sidecar.clock import Clock
from sidecar.config.runtime import Runtime
from sidecar.emulator import Emulator
from sidecar.protocol.connections import Listener
from sidecar.server import protocol_listener
from sidecar.settings import (
    AuthSettings,
    CloudflareSeedSettings,
    KubernetesSettings,
    LogSettings,
    RedisSettings,
    ServerSettings,
    Settings,
    SweepSettings,
    TableSettings,
)
from tests.bind_server import BindServer
from tests.fake_kube import FakeKube
from tests.redis_server import RedisServer

SECRET = b"test-hmac-secret-0123456789abcdef"
_ENV_PREFIXES = ("DNS_SIDECAR_", "HMAC_", "CLOUDFLARE_")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings come from the environment; tests start from none of ours."""
    for name in list(os.environ):
        if name.startswith(_ENV_PREFIXES) or name == "PORT":
            monkeypatch.delenv(name)


def make_settings(**auth: Any) -> Settings:
    server = auth.pop("server", {})
    table = auth.pop("table", {})
    kubernetes = auth.pop("kubernetes", {})
    sweeps = auth.pop("sweeps", {})
    redis = auth.pop("redis", {})
    return Settings(
        server=ServerSettings(**server),
        auth=AuthSettings(**auth),
        log=LogSettings(),
        table=TableSettings(**table),
        cloudflare=CloudflareSeedSettings(),
        kubernetes=KubernetesSettings(**kubernetes),
        sweeps=SweepSettings(**sweeps),
        redis=RedisSettings(**redis),
    )


@dataclass
class ProtocolReply:
    status: int
    body: Any
    headers: CIMultiDict[str] = field(default_factory=CIMultiDict)

    @property
    def code(self) -> str | None:
        error = self.body.get("error") if isinstance(self.body, dict) else None
        return error.get("code") if error else None

    @property
    def message(self) -> str:
        return str(self.body["error"]["message"])


@dataclass
class Caller:
    """Talks to a running sidecar the way the operator does."""

    session: aiohttp.ClientSession
    base: str
    secret: bytes | None = None
    algorithm: Algorithm = Algorithm.SHA256

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        sign: bool = True,
        secret: bytes | None = None,
        algorithm: Algorithm | None = None,
        timestamp: str | None = None,
        nonce: str | None = None,
        signed_path: str | None = None,
        signed_body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> ProtocolReply:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else b"")
        sent = {"Content-Type": "application/json"} if data else {}
        key = secret or self.secret
        if sign and key is not None:
            sent.update(
                signing.sign(
                    key,
                    algorithm or self.algorithm,
                    method,
                    signed_path or path,
                    data if signed_body is None else signed_body,
                    timestamp=timestamp,
                    nonce=nonce,
                )
            )
        sent.update(headers or {})
        payload: bytes | io.BytesIO = io.BytesIO(data) if len(data) > 1 << 20 else data
        async with self.session.request(method, self.base + path, data=payload, headers=sent) as r:
            text = await r.read()
            try:
                parsed: Any = json.loads(text)
            except ValueError:
                parsed = text.decode(errors="replace")
            return ProtocolReply(r.status, parsed, CIMultiDict(r.headers))

    async def upsert(
        self, kind: str, domain: str, sub: str, values: list[str], **kw: Any
    ) -> ProtocolReply:
        record: dict[str, Any] = {"type": kind, "domain": domain, "subdomain": sub}
        record["values"] = values
        if "ttl" in kw:
            record["ttl"] = kw.pop("ttl")
        return await self.call("POST", "/records", {"record": record, "operation": "upsert"}, **kw)


@dataclass
class Sidecar:
    app: web.Application
    port: int
    caller: Caller

    @property
    def runtime(self) -> Runtime:
        return self.app[LIVE].current


StartSidecar = Callable[..., Awaitable[Sidecar]]
StartManagement = Callable[[Sidecar], Awaitable[Caller]]


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


@pytest.fixture
async def start_sidecar(session: aiohttp.ClientSession) -> AsyncIterator[StartSidecar]:
    """Start a sidecar on a free loopback port, its protocol port as ``serve()`` runs it (the
    same listener); every one started is stopped after the test."""
    started: list[tuple[web.AppRunner, Listener]] = []

    async def start(
        settings: Settings | None = None,
        *,
        runtime: Runtime | None = None,
        clock: Clock | None = None,
        secret: bytes | None = None,
        algorithm: Algorithm = Algorithm.SHA256,
    ) -> Sidecar:
        settings = settings or make_settings()
        app = create_app(settings, clock=clock, initial=runtime)
        runner = web.AppRunner(app, handle_signals=False)
        await runner.setup()
        listener = protocol_listener(app, settings.server)
        started.append((runner, listener))
        await listener.start("127.0.0.1", 0)
        assert listener.socket is not None
        port = int(listener.socket.getsockname()[1])
        base = f"http://127.0.0.1:{port}"
        return Sidecar(app, port, Caller(session, base, secret, algorithm))

    yield start
    for runner, listener in reversed(started):
        await listener.close(1.0)
        await runner.cleanup()


@pytest.fixture
async def start_management(
    session: aiohttp.ClientSession,
) -> AsyncIterator[Callable[[Sidecar], Awaitable[Caller]]]:
    servers: list[TestServer] = []

    async def start(sidecar: Sidecar) -> Caller:
        server = TestServer(sidecar.app[MANAGEMENT], host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        return Caller(session, f"http://127.0.0.1:{server.port}")

    yield start
    for server in servers:
        await server.close()


@pytest.fixture
def restore_env() -> Iterator[None]:
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@dataclass
class RunningEmulator:
    emulator: Emulator
    server: TestServer

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}/client/v4"

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    def calls(self) -> dict[str, int]:
        return dict(self.emulator.stats)

    def total(self) -> int:
        return sum(self.emulator.stats.values())

    def records(self, zone: str) -> list[dict[str, Any]]:
        found = [z for z in self.emulator.state.zones.values() if z.name == zone]
        return sorted(found[0].records.values(), key=lambda r: (r["type"], r["content"]))


@pytest.fixture
async def cf() -> AsyncIterator[RunningEmulator]:
    """The Cloudflare API emulator on a loopback port, with two zones and a token."""
    emulator = Emulator()
    emulator.add_token("cf-token")
    emulator.state.add_zone("example.com", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")
    emulator.state.add_zone("example.org", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb")
    server = TestServer(emulator.app(), host="127.0.0.1")
    await server.start_server()
    yield RunningEmulator(emulator, server)
    await server.close()


@dataclass
class RunningKube:
    fake: FakeKube
    server: TestServer
    kubeconfig: Path


@pytest.fixture
async def kube(tmp_path: Path) -> AsyncIterator[RunningKube]:
    """The fake Kubernetes API server on a loopback port, and a kubeconfig pointing at it."""
    fake = FakeKube()
    server = TestServer(fake.app(), host="127.0.0.1")
    await server.start_server()
    config = fake.kubeconfig(tmp_path / "kubeconfig", server.port)  # type: ignore[arg-type]
    yield RunningKube(fake, server, config)
    fake.drop_watches()
    await server.close()


async def eventually(check: Callable[[], Any], seconds: float = 10.0) -> None:
    """Poll ``check`` until it holds (sync or async), with a deadline: no blind sleeps."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {seconds} s")
        await asyncio.sleep(0.01)


@pytest.fixture
def redis_server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[RedisServer]:
    """A real redis-server on a free loopback port, killed afterwards; without persistence,
    unless parametrized indirectly with ``"appendonly"``."""
    server = RedisServer(
        tmp_path / "redis", appendonly=getattr(request, "param", "") == "appendonly"
    )
    server.directory.mkdir()
    server.start()
    yield server
    server.kill()


@pytest.fixture
def bind(tmp_path: Path) -> Iterator[BindServer]:
    """A real BIND ``named`` on a free loopback port, with zones example.test (transfers to
    the sidecar's key) and closed.test (no transfers), TSIG keys for the sidecar and an admin;
    stopped by its PID afterwards."""
    server = BindServer(tmp_path / "bind", no_transfer=("closed.test",))
    server.start()
    yield server
    server.stop()
