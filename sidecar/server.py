"""Running the two servers until SIGTERM, then draining in-flight requests and exiting 0.

Shutdown fits in ``shutdown_timeout`` seconds in total: ``/readyz`` turns 503, the protocol port
keeps accepting for ``drain_delay`` seconds (so a Service stops routing here first), then stops
accepting connections and closes the idle ones, requests in progress finish (their
connections stay open, so a body still arriving is read) until shortly before the deadline;
then what is left is cancelled and everything closes, within what remains.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web

from sidecar.app import IN_FLIGHT, MANAGEMENT, MANAGEMENT_API, METRICS, SERVE, TLS
from sidecar.protocol.connections import Guard, Listener, default_limit, management_limit
from sidecar.protocol.handshakes import Handshakes
from sidecar.settings import ServerSettings, Settings

log = logging.getLogger(__name__)


def protocol_listener(app: web.Application, server: ServerSettings) -> Listener:
    """The protocol port: the app's request path, within the connection terms of ``server``."""
    guard = Guard(server.max_connections or default_limit(), server.read_timeout, app[METRICS])
    tls = app.get(TLS)  # HTTPS: the certificate pair in force, and the handshakes' terms
    return Listener(
        app[SERVE],
        guard,
        max_body=server.max_body_bytes,
        tls=Handshakes(tls, guard, app[METRICS], server.read_timeout) if tls else None,
        access_log=None,
        lingering_time=server.read_timeout,
    )


def management_listener(
    app: web.Application, management: web.AppRunner, server: ServerSettings
) -> Listener:
    """The management port: the management app (set up by ``management``), within the same
    terms as the protocol port (read deadlines; a cap of its own out of the descriptors the
    protocol port's default cap keeps back; parser errors answered, one warning a minute)."""
    assert management.server is not None, "set up the runner first"
    guard = Guard(management_limit(), server.read_timeout, app[METRICS], port="management")
    return Listener.for_app(
        management.server, guard, access_log=None, lingering_time=server.read_timeout
    )


def grace(shutdown_timeout: float) -> float:
    """A slice of the shutdown budget (aiohttp needs > 0). Four are kept back from draining: two
    for aiohttp to cancel what is left, one to close the providers, one for the process to exit.
    """
    return max(0.05, min(1.0, shutdown_timeout / 10))


async def serve(
    app: web.Application, settings: Settings, stop: asyncio.Event | None = None
) -> None:
    """Serve until ``stop`` is set (SIGTERM and SIGINT set it)."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = settings.server
    margin = grace(server.shutdown_timeout)
    protocol = web.AppRunner(app, handle_signals=False)  # the app's lifecycle (cleanup_ctx)
    management = web.AppRunner(app[MANAGEMENT], access_log=None, handle_signals=False)
    listener = protocol_listener(app, server)
    # bound before the app starts: a connection made meanwhile (the app may be ready before
    # the accept loop runs) waits in the kernel's backlog instead of being refused
    await listener.bind(server.host, server.port)
    try:
        await protocol.setup()
        await management.setup()
    except BaseException:
        await listener.stop()
        raise
    guard = listener.guard
    management_port = management_listener(app, management, server)
    deadline: float | None = None  # set at the stop signal
    try:
        # the protocol port first: /readyz is reachable only once requests can be taken
        await listener.start(server.host, server.port)
        await management_port.start(server.management_host, server.management_port)
        log.info(
            "dns-sidecar serving",
            extra={
                "fields": {
                    "protocol": f"{'https' if TLS in app else 'http'}://{server.host}:{server.port}",
                    "management": f"{server.management_host}:{server.management_port}",
                    "config": app[MANAGEMENT_API].live.current.source,
                    "max_connections": guard.limit,
                }
            },
        )
        await stop.wait()
        deadline = loop.time() + server.shutdown_timeout - margin  # margin: the process exit
        await _drain(app, listener, server, deadline, margin)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        # waits up to ``margin`` for a request still running, then as long again once cancelled
        await listener.close(margin)
        try:
            async with asyncio.timeout_at(deadline):
                await protocol.cleanup()
        except TimeoutError:
            log.warning("shutdown timeout: closing the providers was cut off")
        await management_port.close(margin / 4)  # its requests are quick: idle ones close at once
        await management.cleanup()
    log.info("stopped")


async def _drain(
    app: web.Application, listener: Listener, server: ServerSettings, deadline: float, margin: float
) -> None:
    """After the stop signal: say not ready, keep accepting a moment, stop accepting, and let
    the requests in progress finish until shortly before ``deadline``."""
    loop = asyncio.get_running_loop()
    in_flight = app[IN_FLIGHT]
    log.info(
        "shutting down: draining in-flight requests",
        extra={"fields": {"in_flight": in_flight.count}},
    )
    app[MANAGEMENT_API].readiness.draining()
    # keep taking connections while the endpoint removal spreads (a Service still routes
    # here for a moment after /readyz turns 503), within the budget
    delay = min(server.drain_delay, max(0.0, deadline - loop.time() - 4 * margin))
    if delay > 0:
        await asyncio.sleep(delay)  # a deliberate pause, not a synchronisation
    await listener.stop()
    listener.guard.close_waiting()
    drain = deadline - loop.time() - 3 * margin
    if in_flight.count and not await in_flight.wait_idle(max(0.0, drain)):
        log.warning("shutdown timeout: %d request(s) cut off", in_flight.count)
