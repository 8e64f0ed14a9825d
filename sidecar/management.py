"""The management port: liveness, readiness, metrics and a status page for people.

Never authenticated and never the protocol: bind it where only the kubelet and Prometheus
reach it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from sidecar import __version__
from sidecar.auth.clients import Client, ClientAuth, Refused, Verifier
from sidecar.config.live import LiveConfig
from sidecar.coordination.base import Coordination
from sidecar.health import HealthCache
from sidecar.observability.metrics import Metrics
from sidecar.routing.table import RoutingTable


class Readiness:
    """The one place that decides ``/readyz``.

    Ready once every startup step of the protocol app has run (its last ``cleanup_ctx`` marks
    it), until shutdown begins, and while the shared state (Redis) is reachable.
    """

    def __init__(self, problem: Callable[[], str | None]) -> None:
        self._problem = problem
        self._started = False
        self._draining = False

    def started(self) -> None:
        self._started = True

    def draining(self) -> None:
        """Shutdown has begun: take no new work (the load balancer stops sending it)."""
        self._draining = True

    @property
    def serving(self) -> bool:
        return self._started and not self._draining

    def verdict(self) -> tuple[str, str | None]:
        """``ready``, or the status that says why not, with a reason where there is one."""
        if self._draining:
            return "draining", None
        if not self._started:
            return "starting", None
        problem = self._problem()
        return ("unavailable", problem) if problem is not None else ("ready", None)


class ManagementApi:
    def __init__(
        self,
        live: LiveConfig,
        health: HealthCache,
        verifier: Verifier,
        metrics: Metrics,
        *,
        coordination: Coordination,
        loops: Callable[[], dict[str, Any]] = dict,
        dns_records: Callable[[], dict[str, Any]] | None = None,
        tls: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.live = live
        self.health = health
        self.verifier = verifier
        self.metrics = metrics
        self.coordination = coordination
        self.loops = loops  # the supervised background loops, by name (running or down)
        self.dns_records = dns_records  # the DNSRecords read (SPEC section 9)
        self.tls = tls or (lambda: {"enabled": False})  # the protocol port's certificate
        self.readiness = Readiness(coordination.problem)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/livez", self.livez),
            web.get("/readyz", self.readyz),
            web.get("/metrics", self.prometheus),
            web.get("/status", self.status),
        ]

    async def livez(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def readyz(self, request: web.Request) -> web.Response:
        status, reason = self.readiness.verdict()
        if status != "ready":
            body = {"status": status} | ({"reason": reason} if reason else {})
            return web.json_response(body, status=503)
        return web.json_response({"status": "ready", "generation": self.live.generation})

    async def prometheus(self, request: web.Request) -> web.Response:
        response = web.Response(body=self.metrics.render())
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    async def status(self, request: web.Request) -> web.Response:
        runtime = self.live.current
        health = self.health.last(runtime.accounts)
        accounts = {
            name: {
                "provider": account.provider.kind,
                "healthy": health[name].healthy if name in health else None,
                "message": health[name].message if name in health else "not checked yet",
                **account.provider.status(),
            }
            for name, account in runtime.accounts.items()
        }
        clients = [_client_status(client) for client in runtime.clients]
        return web.json_response(
            {
                "version": __version__,
                "ready": self.readiness.serving,
                "config": {
                    "file": self.live.config_file,
                    "source": runtime.source,
                    "generation": runtime.generation,
                    "lastReloadError": self.live.last_error,
                    "failedReloads": self.live.failed_reloads,
                },
                "zones": [
                    {
                        "zone": route.zone.name,
                        "account": route.account.name,
                        "clients": sorted(route.clients) if route.clients is not None else "all",
                    }
                    for route in runtime.table
                ],
                "routes": _routes(runtime.table),
                "accounts": accounts,
                "clients": clients,
                "replayCache": self.verifier.replay.status(),
                "coordination": self.coordination.status(),
                "loops": self.loops(),
                "dnsRecords": self.dns_records() if self.dns_records else None,
                "tls": self.tls(),
            }
        )


def _routes(table: RoutingTable) -> dict[str, list[dict[str, str | None]]]:
    """Each client's routes (``*``: callers the table names no view for, such as unsigned
    ones), with the owner its marker names."""
    views: list[tuple[str, str | None]] = [(name, name) for name in table.clients]
    views.append(("*", None))
    return {
        label: [
            {
                "zone": route.zone.name,
                "account": route.account.name,
                "provider": route.account.provider.kind,
                "owner": route.zone.owner.deployment,
                "dnsClass": route.zone.owner.dns_class,
            }
            for route in table.routes_for(client)
        ]
        for label, client in views
    }


def _client_status(client: Client) -> dict[str, Any]:
    state = client.state()
    settings = state if isinstance(state, ClientAuth) else None
    return {
        "name": client.name,
        "source": client.source,
        "algorithm": settings.algorithm.value if settings and settings.secrets else None,
        "signed": bool(settings and settings.secrets),
        "secrets": settings.secret_count if settings else 0,
        "zones": list(client.zones) if client.zones is not None else "all",
        "refused": state.reason if isinstance(state, Refused) else None,
        **client.details(),
    }
