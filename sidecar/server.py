"""Running the two servers until SIGTERM, then draining in-flight requests and exiting 0."""

from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web

from sidecar.app import MANAGEMENT, MANAGEMENT_API
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
        await web.TCPSite(protocol, server.host, server.port).start()
        app[MANAGEMENT_API].ready = True
        log.info(
            "dns-sidecar serving",
            extra={
                "fields": {
                    "protocol": f"{server.host}:{server.port}",
                    "management": f"{server.management_host}:{server.management_port}",
                }
            },
        )
        await stop.wait()
        log.info("shutting down: draining in-flight requests")
        app[MANAGEMENT_API].ready = False
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await protocol.cleanup()
        await management.cleanup()
    log.info("stopped")
