"""Running the two servers until SIGTERM, then draining in-flight requests and exiting 0.

Shutdown order: ``/readyz`` turns 503, the protocol port stops accepting connections, requests
in progress finish (their connections stay open, so a body still arriving is read), for at most
``shutdown_timeout`` seconds; then everything closes.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web

from sidecar.app import IN_FLIGHT, MANAGEMENT, MANAGEMENT_API
from sidecar.settings import Settings

log = logging.getLogger(__name__)


async def serve(
    app: web.Application, settings: Settings, stop: asyncio.Event | None = None
) -> None:
    """Serve until ``stop`` is set (SIGTERM and SIGINT set it)."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = settings.server
    protocol = web.AppRunner(
        app, access_log=None, shutdown_timeout=server.shutdown_timeout, handle_signals=False
    )
    management = web.AppRunner(app[MANAGEMENT], access_log=None, handle_signals=False)
    await protocol.setup()
    await management.setup()
    try:
        await web.TCPSite(management, server.management_host, server.management_port).start()
        site = web.TCPSite(protocol, server.host, server.port)
        await site.start()
        app[MANAGEMENT_API].ready = True
        log.info(
            "dns-sidecar serving",
            extra={
                "fields": {
                    "protocol": f"{server.host}:{server.port}",
                    "management": f"{server.management_host}:{server.management_port}",
                    "config": app[MANAGEMENT_API].live.current.source,
                }
            },
        )
        await stop.wait()
        in_flight = app[IN_FLIGHT]
        log.info(
            "shutting down: draining in-flight requests",
            extra={"fields": {"in_flight": in_flight.count}},
        )
        app[MANAGEMENT_API].ready = False
        await site.stop()
        if not await in_flight.wait_idle(server.shutdown_timeout):
            log.warning("shutdown timeout: %d request(s) cut off", in_flight.count)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await protocol.cleanup()
        await management.cleanup()
    log.info("stopped")
