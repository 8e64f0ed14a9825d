"""The management port's connection terms (SPEC section 8): the protocol port's guards, with a
cap of its own and parser errors that cannot flood the log."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from sidecar.app import MANAGEMENT_API, create_app
from sidecar.protocol.connections import default_limit, management_limit
from sidecar.server import serve
from tests.conftest import SECRET, eventually, make_settings
from tests.service import free_port
from tests.test_connections import Served, status_and_body

Serve = Callable[..., Awaitable[Served]]


@pytest.fixture
async def management() -> AsyncIterator[Serve]:
    """``serve()`` in this event loop; ``port`` of the result is the management port."""
    running: list[tuple[asyncio.Event, asyncio.Task[None]]] = []

    async def start(**server: Any) -> Served:
        port = free_port()
        settings = make_settings(
            hmac_secret=SECRET.decode(),
            server={"port": free_port(), "management_port": port, **server},
        )
        app = create_app(settings)
        stop = asyncio.Event()
        running.append((stop, asyncio.get_running_loop().create_task(serve(app, settings, stop))))
        await eventually(lambda: app[MANAGEMENT_API].readiness.serving)
        served = Served(app, port)
        await eventually(lambda: _accepts(port))  # readiness is set before the port listens
        return served

    yield start
    for stop, task in running:
        stop.set()
        await asyncio.wait_for(task, 30)


async def _accepts(port: int) -> bool:
    with contextlib.suppress(OSError):
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.close()
        return True
    return False


def test_the_management_cap_comes_out_of_the_protocol_ports_reserve() -> None:
    """Both caps together stay below the descriptor limit, with room left for the rest."""
    caps = [(default_limit(n), management_limit(n)) for n in (64, 1024, 20_000)]
    assert caps == [(16, 12), (896, 32), (17_500, 32)]
    assert all(a + b + 16 <= n for (a, b), n in zip(caps, (64, 1024, 20_000), strict=True))


async def test_a_slow_head_on_the_management_port_is_closed(management: Serve) -> None:
    """A head that never completes is closed at the read timeout, silently, and counted."""
    served = await management(read_timeout=0.3)
    loop = asyncio.get_running_loop()
    started = loop.time()
    reply = await served.exchange(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
    assert (reply, loop.time() - started < 5) == (b"", True)
    assert served.metric("dns_sidecar_connections_closed_total", reason="slow_head") == 1.0


async def test_a_slow_body_does_not_hold_a_management_connection(management: Serve) -> None:
    """A body that never arrives is not waited for past the read timeout (aiohttp's own
    default lingers 10 s): answered, then closed."""
    served = await management(read_timeout=0.3)
    loop = asyncio.get_running_loop()
    started = loop.time()
    reply = await served.exchange(
        b"POST /livez HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"
    )
    assert (reply.split(b" ", 2)[1], loop.time() - started < 5) == (b"405", True)


async def test_at_the_management_cap_the_oldest_idle_connection_makes_room(
    management: Serve,
) -> None:
    """With the cap reached by connections that send nothing, a probe is still answered."""
    served = await management(read_timeout=30)
    idle = [
        await asyncio.open_connection("127.0.0.1", served.port) for _ in range(management_limit())
    ]
    reply = await served.exchange(b"GET /livez HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status_and_body(reply) == (200, {"status": "alive"})
    assert await asyncio.wait_for(idle[0][0].read(), 10) == b""  # the oldest made room
    assert served.metric("dns_sidecar_connections_closed_total", reason="limit") == 1.0
    for _, writer in idle:
        writer.close()


async def test_parser_errors_on_the_management_port_are_one_warning_a_minute(
    management: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    """Each malformed request is answered (JSON, 400) and counted; the log gets one warning,
    however many arrive within the minute."""
    served = await management()
    bad = b"GET /livez HTTP/1.1\r\nHost: x\r\nX-Bad: a\x01b\r\n\r\n"
    with caplog.at_level(logging.WARNING):
        replies = [await served.exchange(bad) for _ in range(5)]
    error = {
        "code": "INVALID_REQUEST",
        "message": "The request is not valid HTTP: Invalid header value char.",
        "details": {},
    }
    assert [status_and_body(reply) for reply in replies] == [
        (400, {"success": False, "error": error})
    ] * 5
    assert [(r.name, r.levelname, r.getMessage()) for r in caplog.records] == [
        (
            "sidecar.protocol.connections",
            "WARNING",
            (
                "malformed HTTP request on the management port from 127.0.0.1: "
                "The request is not valid HTTP: Invalid header value char."
            ),
        )
    ]
    assert served.metric("dns_sidecar_http_parse_errors_total", status="400") == 5.0


async def test_the_management_port_still_serves_its_endpoints(management: Serve) -> None:
    """Behind the guards the management app answers as before: /readyz with its generation."""
    served = await management()
    reply = await served.exchange(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status_and_body(reply) == (200, {"status": "ready", "generation": 1})
