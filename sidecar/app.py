"""Wiring: the settings and the routing table in, the protocol and management apps out."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from sidecar.auth.clients import AuthSettings, Verifier
from sidecar.auth.replay import ReplayCache
from sidecar.clock import Clock, SystemClock
from sidecar.config import loader, runtime
from sidecar.config.live import LiveConfig
from sidecar.management import ManagementApi
from sidecar.observability.inflight import InFlight
from sidecar.observability.metrics import Metrics
from sidecar.protocol.handlers import ProtocolApi
from sidecar.protocol.middleware import authenticate, observe
from sidecar.routing.health import HealthCache
from sidecar.settings import Settings

LIVE = web.AppKey("live", LiveConfig)
METRICS = web.AppKey("metrics", Metrics)
VERIFIER = web.AppKey("verifier", Verifier)
MANAGEMENT = web.AppKey("management", web.Application)
MANAGEMENT_API = web.AppKey("management_api", ManagementApi)
IN_FLIGHT = web.AppKey("in_flight", InFlight)

log = logging.getLogger(__name__)


class StartupError(Exception):
    """The service must not start as configured; the message says why and what to do."""


def load_runtime(settings: Settings, clock: Clock | None = None) -> runtime.Runtime:
    """The routing table file when one is set, else seed-compatible mode or the default."""
    path = settings.table.config
    if path is None:
        return runtime.without_table(settings, clock)
    return runtime.build(loader.load(path), settings, source=str(path), clock=clock)


def check_exposure(settings: Settings, current: runtime.Runtime) -> None:
    """Unsigned requests are accepted only on a loopback address, or when explicitly allowed."""
    server = settings.server
    open_to_unsigned = not current.clients or any(
        not client.signs and not client.refusal for client in current.clients
    )
    if open_to_unsigned and not _is_loopback(server.host) and not server.allow_unauthenticated:
        raise StartupError(
            f"Refusing to listen on {server.host} without an HMAC secret: anyone who can reach "
            "the port could change DNS records. Set HMAC_SECRET (or clients in the routing "
            "table), listen on 127.0.0.1, or pass --allow-unauthenticated."
        )


def create_app(
    settings: Settings, *, clock: Clock | None = None, initial: runtime.Runtime | None = None
) -> web.Application:
    """The protocol app; the management app hangs off it under ``MANAGEMENT``."""
    clock = clock or SystemClock()
    current = initial or load_runtime(settings, clock)
    check_exposure(settings, current)
    live = LiveConfig(current, config_file=str(settings.table.config or "") or None)
    metrics = Metrics()
    verifier = Verifier(
        ReplayCache(settings.auth.replay_cache_size),
        clock,
        AuthSettings(skew=settings.auth.timestamp_skew),
    )
    metrics.watch_replay_cache(lambda: len(verifier.replay))
    metrics.config_generation.set_function(lambda: float(live.generation))
    health = HealthCache(clock, settings.server.health_cache_seconds)
    in_flight = InFlight(metrics.in_flight)

    app = web.Application(
        client_max_size=settings.server.max_body_bytes,
        middlewares=[
            observe(metrics, in_flight),
            authenticate(verifier, live, metrics, settings.server.max_body_bytes),
        ],
    )
    app.add_routes(ProtocolApi(live, health, metrics, clock).routes())
    app[LIVE] = live
    app[METRICS] = metrics
    app[VERIFIER] = verifier
    app[IN_FLIGHT] = in_flight

    management = web.Application()
    management_api = ManagementApi(live, health, verifier, metrics)
    management.add_routes(management_api.routes())
    app[MANAGEMENT] = management
    app[MANAGEMENT_API] = management_api

    async def providers(app: web.Application) -> AsyncIterator[None]:
        yield
        await app[LIVE].current.aclose()

    app.cleanup_ctx.append(providers)
    return app


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
