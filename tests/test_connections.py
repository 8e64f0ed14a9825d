"""Connections on the protocol port (SPEC section 8): read deadlines, the cap, parser errors."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import resource
import signal
import socket
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from sidecar.app import MANAGEMENT_API, METRICS, create_app
from sidecar.auth import signing
from sidecar.auth.signing import Algorithm
from sidecar.observability.metrics import Metrics
from sidecar.protocol.connections import (
    Guard,
    GuardedHandler,
    Listener,
    RateLimitedWarning,
    default_limit,
)
from sidecar.server import serve
from sidecar.settings import ServerSettings
from tests.conftest import SECRET, eventually, make_settings
from tests.service import Service, emulator, free_port, running, wait_for


@dataclass
class Served:
    app: web.Application
    port: int

    def metric(self, name: str, **labels: str) -> float:
        value = self.app[METRICS].registry.get_sample_value(name, labels)
        return value or 0.0

    async def exchange(self, data: bytes, *, read: bool = True) -> bytes:
        """Send ``data`` on a new connection; everything answered until the server closes."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            writer.write(data)
            await writer.drain()
            return await asyncio.wait_for(reader.read(), 10) if read else b""
        finally:
            writer.close()


Serve = Callable[..., Awaitable[Served]]


@pytest.fixture
async def served() -> AsyncIterator[Serve]:
    """``serve()`` itself, in this event loop, on a free port; stopped after the test."""
    running: list[tuple[asyncio.Event, asyncio.Task[None]]] = []

    async def start(**server: Any) -> Served:
        port = free_port()
        settings = make_settings(
            hmac_secret=SECRET.decode(),
            server={"port": port, "management_port": free_port(), **server},
        )
        app = create_app(settings)
        stop = asyncio.Event()
        running.append((stop, asyncio.get_running_loop().create_task(serve(app, settings, stop))))
        await eventually(lambda: app[MANAGEMENT_API].readiness.serving)
        return Served(app, port)

    yield start
    for stop, task in running:
        stop.set()
        await asyncio.wait_for(task, 30)


def signed_get(path: str = "/records/A/example.com/www") -> bytes:
    headers = signing.sign(SECRET, Algorithm.SHA256, "GET", path, b"")
    lines = [f"GET {path} HTTP/1.1", "Host: x", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def status_and_body(reply: bytes) -> tuple[int, Any]:
    head, _, body = reply.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)


def test_default_limit_stays_below_the_descriptor_limit() -> None:
    """The derived cap leaves room for the process's own descriptors, and never drops below 16."""
    assert [default_limit(n) for n in (1024, 20_000, 64)] == [896, 17_500, 16]


def test_a_repeated_warning_is_logged_once_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    """Within a minute the condition is only counted; the next warning says how often it was."""
    now = [100.0]
    warn = RateLimitedWarning("limit of %d reached", clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, "sidecar.protocol.connections"):
        for at in (100.0, 101.0, 159.0, 160.0):
            now[0] = at
            warn(5)
    assert [r.getMessage() for r in caplog.records] == [
        "limit of 5 reached",
        "limit of 5 reached (2 more since the last warning)",
    ]


async def test_slow_head_is_closed_after_the_read_timeout(served: Serve) -> None:
    """A connection that never finishes its request head is closed, silently, and counted."""
    service = await served(read_timeout=0.3)
    reply = await service.exchange(b"GET /records/A/example.com/www HTTP/1.1\r\nHost: x\r\n")
    assert reply == b""
    assert service.metric("dns_sidecar_connections_closed_total", reason="slow_head") == 1.0


async def test_slow_body_is_answered_400_and_leaves_no_request_in_flight(served: Serve) -> None:
    """A body that does not arrive in time gets the JSON error; the request stops counting."""
    service = await served(read_timeout=0.3)
    reply = await service.exchange(
        b'POST /records HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"rec'
    )
    assert status_and_body(reply) == (
        400,
        {
            "success": False,
            "error": {
                "code": "INVALID_REQUEST",
                "message": "The request body did not arrive within 0.3 s.",
                "details": {"readTimeout": 0.3},
            },
        },
    )
    assert service.metric("dns_sidecar_requests_in_flight") == 0.0
    assert service.metric("dns_sidecar_connections_closed_total", reason="slow_body") == 1.0


async def test_a_burst_of_connections_is_accepted_in_one_turn(
    served: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Connections queued in the kernel together are all taken before any request is answered:
    accepted one per turn of the loop, the last of a burst waited for every earlier request."""
    service = await served(read_timeout=30)
    events: list[str] = []
    was_opened, was_busy = Guard.opened, Guard.busy

    def on_open(guard: Guard, handler: GuardedHandler) -> None:
        events.append("opened")
        was_opened(guard, handler)

    def on_busy(guard: Guard, handler: GuardedHandler, *, busy: bool) -> None:
        events.append("busy" if busy else "answered")
        was_busy(guard, handler, busy=busy)

    monkeypatch.setattr(Guard, "opened", on_open)
    monkeypatch.setattr(Guard, "busy", on_busy)
    burst = []
    for _ in range(20):  # blocking calls: the server's loop (this one) runs none of it yet
        conn = socket.create_connection(("127.0.0.1", service.port), timeout=5)
        conn.sendall(signed_get())
        conn.setblocking(False)
        burst.append(conn)
    replies = [await asyncio.open_connection(sock=conn) for conn in burst]
    for reader, writer in replies:
        assert status_and_body(await asyncio.wait_for(reader.read(), 10))[0] == 404
        writer.close()
    assert events[:20] == ["opened"] * 20


async def test_at_the_cap_a_new_connection_replaces_the_oldest_idle_one(served: Serve) -> None:
    """With the cap reached by connections that send nothing, a real request is still served."""
    service = await served(max_connections=3, read_timeout=30)
    # connected before the request, so accepted before it (the listen queue is first in, first
    # out): the request finds the cap reached, nothing to wait for here
    idle = [await asyncio.open_connection("127.0.0.1", service.port) for _ in range(3)]
    reply = await service.exchange(signed_get())
    assert status_and_body(reply)[0] == 404  # served: no such record
    await eventually(
        lambda: service.metric("dns_sidecar_connections_closed_total", reason="limit") == 1.0
    )
    assert await asyncio.wait_for(idle[0][0].read(), 10) == b""  # the oldest made room
    closed = {
        reason: service.metric("dns_sidecar_connections_closed_total", reason=reason)
        for reason in ("limit", "slow_head", "slow_body")
    }
    assert closed == {"limit": 1.0, "slow_head": 0.0, "slow_body": 0.0}
    for _, writer in idle:
        writer.close()


async def test_a_busy_connection_is_never_closed_to_make_room(
    served: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    """At the cap with every connection inside a request, new ones wait for one to end."""
    service = await served(max_connections=1, read_timeout=30)
    body = b'{"record": {}}'
    reader, writer = await asyncio.open_connection("127.0.0.1", service.port)
    writer.write(
        b"POST /records HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body[:5]
    )
    await eventually(lambda: service.metric("dns_sidecar_requests_in_flight") == 1.0)
    waiting = asyncio.get_running_loop().create_task(service.exchange(signed_get()))
    with caplog.at_level(logging.WARNING, "sidecar.protocol.connections"):
        await eventually(lambda: "connection limit of 1 reached" in caplog.text)
    assert not waiting.done()
    writer.write(body[5:])
    assert status_and_body(await asyncio.wait_for(reader.read(), 10))[0] == 401
    assert status_and_body(await asyncio.wait_for(waiting, 10))[0] == 404
    writer.close()


def test_settings_document_the_connection_terms() -> None:
    """The two connection settings come from the environment, with their documented defaults."""
    fields = ServerSettings.model_fields
    assert (fields["read_timeout"].default, fields["max_connections"].default) == (5.0, None)
    assert all(fields[name].description for name in ("read_timeout", "max_connections"))


@pytest.fixture
def many_descriptors() -> Iterator[None]:
    """This test process needs room for well over a thousand sockets of its own."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4096 if hard == resource.RLIM_INFINITY else min(hard, 4096)
    if wanted < 2500:
        pytest.skip(f"the hard file-descriptor limit ({hard}) is too low for this test")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.usefixtures("many_descriptors")
def test_a_signed_request_is_served_past_1100_slow_connections_at_1024_descriptors() -> None:
    """1 100 slow connections against a 1 024-descriptor process: a real request still gets in."""
    slow: list[socket.socket] = []
    with running(env={"HMAC_SECRET": SECRET.decode()}, fd_limit=1024) as service:
        logged_before = service.log.stat().st_size
        try:
            for index in range(1100):
                conn = socket.create_connection(("127.0.0.1", service.port), timeout=5)
                slow.append(conn)
                with contextlib.suppress(OSError):  # it may be closed already, to make room
                    if index % 10:
                        conn.sendall(b"POST /records HTTP/1.1\r\nHost: x\r\n")  # a head, slowly
                    else:
                        conn.sendall(b"POST /records HTTP/1.1\r\nContent-Length: 99\r\n\r\n{")
            started = time.monotonic()
            with socket.create_connection(("127.0.0.1", service.port), timeout=6) as conn:
                conn.sendall(signed_get())
                reply = b""
                while chunk := conn.recv(65536):
                    reply += chunk
            took = time.monotonic() - started
        finally:
            for conn in slow:
                conn.close()
        assert (status_and_body(reply)[0], took < 6) == (404, True)
        assert service.log.stat().st_size - logged_before < 64 * 1024


def in_flight(service: Service) -> float:
    with urllib.request.urlopen(service.management_url + "/metrics", timeout=5) as reply:
        text = reply.read().decode()
    return float(text.split("\ndns_sidecar_requests_in_flight ", 1)[1].split("\n", 1)[0])


def test_shutdown_fits_the_timeout_with_a_hung_provider_call_and_a_slow_body(
    tmp_path: Path,
) -> None:
    """SIGTERM with a provider call hanging and a body trickling in: exit within the timeout."""
    with emulator(tmp_path / "emulator.log") as cloudflare:
        env = {
            "CLOUDFLARE_API_TOKEN": "dev-token",
            "CLOUDFLARE_BASE_URL": cloudflare.url + "/client/v4",
            "HMAC_SECRET": SECRET.decode(),
            "DNS_SIDECAR_SHUTDOWN_TIMEOUT": "2",
            "DNS_SIDECAR_PROVIDER_TIMEOUT": "60",
        }
        with running(env=env) as service:
            faults = urllib.request.Request(
                cloudflare.url + "/__emulator/faults", data=b'{"latency": 60}', method="POST"
            )
            urllib.request.urlopen(faults, timeout=5).close()
            with (
                socket.create_connection(("127.0.0.1", service.port), timeout=10) as hung,
                socket.create_connection(("127.0.0.1", service.port), timeout=10) as slow,
            ):
                hung.sendall(signed_get())
                wait_for(lambda: in_flight(service) == 1.0)
                slow.sendall(b"POST /records HTTP/1.1\r\nHost: x\r\nContent-Length: 99\r\n\r\n{")
                wait_for(lambda: in_flight(service) == 2.0)
                started = time.monotonic()
                service.process.send_signal(signal.SIGTERM)
                code = service.process.wait(timeout=30)
                took = time.monotonic() - started
                logged = service.logged()  # read before the directory is removed
    assert (code, took < 2 + 1) == (0, True), took  # 1 s for a loaded machine
    errors = [line for line in logged.splitlines() if json.loads(line)["level"] == "error"]
    assert errors == []


MALFORMED = {
    "oversized header": (
        b"X-Big: " + b"a" * 9000 + b"\r\n",
        431,
        "The request head has a line longer than 8190 bytes.",
    ),
    "too many headers": (
        b"".join(b"X-H%d: 1\r\n" % n for n in range(200)),
        431,
        "The request head is too large: Too many headers received.",
    ),
    "CL and TE": (
        b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
        400,
        "The request is not valid HTTP: Transfer-Encoding can't be present with Content-Length.",
    ),
    "duplicate Content-Length": (
        b"Content-Length: 5\r\nContent-Length: 5\r\n",
        400,
        "The request is not valid HTTP: Duplicate Content-Length.",
    ),
    "bad header byte": (
        b"X-Bad: a\x01b\r\n",
        400,
        "The request is not valid HTTP: Invalid header value char.",
    ),
}


@pytest.mark.parametrize("case", list(MALFORMED))
async def test_parser_errors_are_json_logged_once_and_counted(
    served: Serve, caplog: pytest.LogCaptureFixture, case: str
) -> None:
    """What the HTTP parser refuses is answered with the JSON error, one warning, a metric."""
    headers, status, message = MALFORMED[case]
    service = await served()
    with caplog.at_level(logging.WARNING):
        reply = await service.exchange(b"POST /records HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
    error = {"code": "INVALID_REQUEST", "message": message, "details": {}}
    assert status_and_body(reply) == (status, {"success": False, "error": error})
    assert b"\r\nContent-Type: application/json" in reply
    assert b"\r\nX-Request-Id: " in reply
    logged = [(r.name, r.levelname, r.exc_info) for r in caplog.records]
    assert logged == [("sidecar.protocol.connections", "WARNING", None)]
    assert service.metric("dns_sidecar_http_parse_errors_total", status=str(status)) == 1.0


async def test_a_trickling_head_does_not_extend_its_deadline(served: Serve) -> None:
    """A head sent a byte at a time is closed at the read timeout, however steady the bytes."""
    service = await served(read_timeout=0.3)
    reader, writer = await asyncio.open_connection("127.0.0.1", service.port)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with contextlib.suppress(ConnectionError):
        for byte in b"GET /records/A/example.com/www HTTP/1.1\r\nHost: x\r\n" * 10:
            writer.write(bytes([byte]))
            await writer.drain()
            if reader.at_eof() or writer.is_closing():
                break
            await asyncio.sleep(0.02)  # the pace of a slow client, not a synchronisation
    assert await asyncio.wait_for(reader.read(), 10) == b""
    assert loop.time() - started < 3
    writer.close()


@pytest.mark.usefixtures("many_descriptors")
def test_running_out_of_descriptors_logs_one_warning() -> None:
    """With the cap set above the descriptor limit, EMFILE is one warning, not a flood."""
    slow: list[socket.socket] = []
    env = {"HMAC_SECRET": SECRET.decode(), "DNS_SIDECAR_MAX_CONNECTIONS": "5000"}
    with running(env=env, fd_limit=256) as service:
        logged_before = service.log.stat().st_size
        try:
            slow.extend(
                socket.create_connection(("127.0.0.1", service.port), timeout=5)
                for _ in range(400)  # those past the limit wait in the backlog
            )
            wait_for(lambda: "cannot accept a connection" in service.logged())
            logged = service.logged()
        finally:
            for conn in slow:
                conn.close()
    lines = [json.loads(line) for line in logged.splitlines()]
    warned = [line["message"] for line in lines if "cannot accept" in line["message"]]
    assert warned == [
        (
            "cannot accept a connection: Too many open files; retrying (lower "
            "DNS_SIDECAR_MAX_CONNECTIONS or raise the file-descriptor limit)"
        )
    ]
    assert len(logged.encode()) - logged_before < 64 * 1024


async def test_a_kept_alive_connection_gets_a_fresh_deadline_per_request(served: Serve) -> None:
    """Idle past the timeout after an answer, then a head in two parts: answered all the same."""
    service = await served(read_timeout=0.3)
    reader, writer = await asyncio.open_connection("127.0.0.1", service.port)
    for idle, pause in ((0.0, 0.0), (0.4, 0.2), (0.0, 0.2)):
        await asyncio.sleep(idle)  # after an answer, no deadline runs until the next byte
        request = signed_get().replace(b"Connection: close", b"Connection: keep-alive")
        writer.write(request[:20])
        await writer.drain()
        await asyncio.sleep(pause)  # within the timeout of the first byte
        writer.write(request[20:])
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        body = await asyncio.wait_for(reader.readexactly(length), 10)
        assert status_and_body(head + body)[0] == 404  # no such record: answered all the same
    writer.close()


async def test_a_client_waiting_for_100_continue_gets_it_then_its_answer(served: Serve) -> None:
    """``Expect: 100-continue``: the interim answer comes before the body is sent, and only
    once the declared size is known to fit; the request is then answered as any other."""
    service = await served(read_timeout=30)
    body = b'{"record": {"type": "A", "domain": "example.com", "values": ["192.0.2.1"]}, '
    body += b'"operation": "upsert"}'
    headers = signing.sign(SECRET, Algorithm.SHA256, "POST", "/records", body)
    head = [
        "POST /records HTTP/1.1",
        "Host: x",
        "Connection: close",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        "Expect: 100-continue",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    reader, writer = await asyncio.open_connection("127.0.0.1", service.port)
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
    interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    writer.write(body)
    reply = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    assert status_and_body(reply)[0] == 200

    too_large = f"Content-Length: {10 * 1024 * 1024}"
    reader, writer = await asyncio.open_connection("127.0.0.1", service.port)
    writer.write(("\r\n".join([*head[:4], too_large, *head[5:]]) + "\r\n\r\n").encode())
    answer = await asyncio.wait_for(reader.readuntil(b"\r\n"), 10)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 413 ")  # no 100 Continue: the body is never asked for


async def _never(request: web.BaseRequest) -> web.StreamResponse:  # pragma: no cover
    raise AssertionError("not called")


class _Listening:
    """A listening socket whose queue holds one good connection, then one that accept(2)
    reports with a network error of the pending connection."""

    def __init__(self, good: socket.socket, error: OSError) -> None:
        self.queue: list[socket.socket | OSError] = [good, error]

    def accept(self) -> tuple[socket.socket, object]:
        if not self.queue:
            raise BlockingIOError(errno.EAGAIN, "no more")
        item = self.queue.pop(0)
        if isinstance(item, OSError):
            raise item
        return item, ("127.0.0.1", 1)


@pytest.mark.parametrize(
    "error",
    [
        ConnectionAbortedError(errno.ECONNABORTED, "Software caused connection abort"),
        OSError(errno.EPROTO, "Protocol error"),
        OSError(errno.ENETUNREACH, "Network is unreachable"),
    ],
    ids=["ECONNABORTED", "EPROTO", "ENETUNREACH"],
)
async def test_a_queued_connections_own_error_ends_the_burst_keeping_the_rest(
    error: OSError,
) -> None:
    """accept(2) reports a queued connection's own network error (ECONNABORTED, EPROTO,
    ENETUNREACH...; to be treated like EAGAIN): the burst ends there, and the connections
    accepted before it stay open, to be served."""
    guard = Guard(100, 5.0, Metrics())
    listener = Listener(_never, guard, max_body=1024)
    ours, theirs = socket.socketpair()
    try:
        # our own Listener's burst, driven with a fake listening socket
        accepted = listener._backlog(_Listening(ours, error))  # type: ignore[arg-type]  # noqa: SLF001
        assert accepted == [ours]
        assert ours.fileno() != -1  # still open, to be served
    finally:
        ours.close()
        theirs.close()


async def test_a_connection_error_at_accept_leaves_the_accept_loop_running(
    served: Serve, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A connection that fails between the kernel's queue and accept(2) is skipped: the next
    one is served, and nothing is logged as a failure of the accept loop."""
    service = await served()
    loop = asyncio.get_running_loop()
    accept = loop.sock_accept
    failures = [ConnectionAbortedError(errno.ECONNABORTED, "Software caused connection abort")]

    async def flaky(sock: socket.socket) -> tuple[socket.socket, Any]:
        if failures:
            raise failures.pop()
        return await accept(sock)

    monkeypatch.setattr(loop, "sock_accept", flaky)
    with caplog.at_level(logging.WARNING):
        first = service.exchange(signed_get())  # its accept is already waiting: a real one
        assert status_and_body(await first)[0] == 404
        assert status_and_body(await service.exchange(signed_get()))[0] == 404
    assert not failures
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
