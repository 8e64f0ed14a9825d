"""The service as installed, end to end, in one pass: what `make smoke-floors` and
`make smoke-newest` run at the lowest and the newest versions the declared ranges allow.

`dns-sidecar serve` runs as a subprocess with a routing table that reads its HMAC secret and its
Cloudflare token from Kubernetes Secrets (tests/fake_kube.py, through the real
kubernetes_asyncio), keeps its nonces in a real redis-server, and serves one zone from the
Cloudflare emulator (through the real Cloudflare SDK) and one from memory. Selected alone with
``pytest -m smoke``.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from sidecar.auth import signing
from sidecar.auth.signing import Algorithm
from tests import redis_server
from tests.fake_kube import FakeKube
from tests.redis_server import RedisServer
from tests.service import Service, emulator, free_port, running, wait_for

pytestmark = pytest.mark.smoke

SECRET = b"smoke-secret"
NS = "dns-system"


class KubeThread:
    """The fake Kubernetes API server on its own event loop in a thread, so that a test that
    waits on a subprocess does not stall it."""

    def __init__(self, fake: FakeKube, kubeconfig: Path) -> None:
        self.fake = fake
        self.kubeconfig = kubeconfig
        self.loop = asyncio.new_event_loop()
        self.port = free_port()
        self.started = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self._stop: asyncio.Event | None = None

    def _run(self) -> None:
        self.loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        runner = web.AppRunner(self.fake.app(), shutdown_timeout=1.0)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        self.started.set()
        await self._stop.wait()
        self.fake.drop_watches()
        await runner.cleanup()

    def __enter__(self) -> KubeThread:
        self.fake.kubeconfig(self.kubeconfig, self.port)
        self.thread.start()
        assert self.started.wait(10), "the fake Kubernetes API did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._stop is not None
        self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(10)
        self.loop.close()


def call(
    service: Service, method: str, path: str, body: Any = None, *, secret: bytes | None = SECRET
) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else b""
    headers = {"Content-Type": "application/json"} if data else {}
    if secret is not None:
        headers.update(signing.sign(secret, Algorithm.SHA256, method, path, data))
    request = urllib.request.Request(
        service.url + path, data=data or None, headers=headers, method=method
    )
    try:
        with urllib.request.urlopen(request, timeout=20) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def raw_exchange(service: Service, data: bytes, seconds: float = 15.0) -> tuple[bytes, float]:
    """Send ``data`` on a new connection; what comes back until the server closes, and after
    how long."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", service.port), timeout=seconds) as conn:
        conn.sendall(data)
        received = b""
        while chunk := conn.recv(65536):
            received += chunk
    return received, time.monotonic() - started


def routing_table(cloudflare_api: str) -> str:
    return f"""
version: 1
clients:
  - name: operator
    algorithm: SHA256
    secrets:
      - secretRef: {{name: hmac, key: secret}}
accounts:
  - name: cf
    provider: cloudflare
    apiToken: {{secretRef: {{name: cloudflare, key: token}}}}
    baseUrl: {cloudflare_api}
  - name: lab
    provider: memory
zones:
  - {{name: example.com, account: cf}}
  - {{name: lab.example, account: lab}}
"""


@pytest.fixture
def smoke_service(tmp_path: Path) -> Iterator[tuple[Service, RedisServer]]:
    fake = FakeKube()
    fake.set_secret(NS, "hmac", {"secret": SECRET.decode()})
    fake.set_secret(NS, "cloudflare", {"token": "dev-token"})
    redis = RedisServer(tmp_path / "redis")
    redis.directory.mkdir()
    redis.start()
    try:
        with (
            KubeThread(fake, tmp_path / "kubeconfig"),
            emulator(tmp_path / "emulator.log", "example.com") as cloudflare,
        ):
            table = tmp_path / "routing.yaml"
            table.write_text(routing_table(cloudflare.url + "/client/v4"))
            env = {
                "DNS_SIDECAR_CONFIG": str(table),
                "DNS_SIDECAR_KUBECONFIG": str(tmp_path / "kubeconfig"),
                "DNS_SIDECAR_REDIS_URL": redis.url,
                "DNS_SIDECAR_READ_TIMEOUT": "1",
            }
            with running(env=env) as service:
                yield service, redis
                code, logged = service.stop()
                assert code == 0, logged
    finally:
        redis.kill()


def test_the_service_works_at_the_installed_versions(
    smoke_service: tuple[Service, RedisServer],
) -> None:
    """Signed upsert, get and delete on Cloudflare (SDK) and memory; the secrets from Kubernetes;
    a nonce kept in Redis; a parser error answered in JSON; a slow head closed."""
    service, redis = smoke_service
    # Redis starts empty: requests signed before the sidecar found it so (within the second)
    # are refused as "state lost", and the operator signs again; so does this poll
    wait_for(lambda: call(service, "GET", "/health")[0] == 200)
    for domain in ("example.com", "lab.example"):
        record = {"type": "A", "domain": domain, "subdomain": "www", "values": ["192.0.2.1"]}
        created = call(service, "POST", "/records", {"record": record, "operation": "upsert"})
        assert (created[0], created[1]["success"]) == (200, True), created
        got = call(service, "GET", f"/records/A/{domain}/www")
        assert (got[0], got[1]["record"]["values"]) == (200, ["192.0.2.1"]), got
        deleted = call(service, "DELETE", f"/records/A/{domain}/www")
        assert deleted[0] == 200, deleted
        gone = call(service, "GET", f"/records/A/{domain}/www")
        assert (gone[0], gone[1]["error"]["code"]) == (404, "RECORD_NOT_FOUND"), gone

    unsigned = call(service, "GET", "/health", secret=None)
    assert (unsigned[0], unsigned[1]["error"]["code"]) == (401, "AUTH_FAILED")
    headers = signing.sign(SECRET, Algorithm.SHA256, "GET", "/health", nonce="smoke-nonce")
    statuses = []
    for _ in range(2):
        request = urllib.request.Request(service.url + "/health", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:
                statuses.append(reply.status)
        except urllib.error.HTTPError as err:
            statuses.append(err.code)
    assert statuses == [200, 401]  # the replay is refused: the nonce is in Redis
    assert redis_server.command(redis.port, "DBSIZE") != b":0\r\n"

    answer, _ = raw_exchange(service, b"GET /health HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b" ", 2)[1] == b"400", answer
    assert json.loads(body)["error"]["code"] == "INVALID_REQUEST"

    answer, took = raw_exchange(service, b"GET /health HTTP/1.1\r\nHost: x\r\n")  # no end
    assert (answer, took < 10) == (b"", True)  # closed after the 1 s read timeout

    with urllib.request.urlopen(service.management_url + "/status", timeout=10) as reply:
        status = json.loads(reply.read())
    assert (status["ready"], status["config"]["lastReloadError"]) == (True, None)
