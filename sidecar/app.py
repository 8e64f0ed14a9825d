"""Wiring: the settings and the routing table in, the protocol and management apps out."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from sidecar.auth.clients import ClientAuth, ClientKind, Verifier, VerifyPolicy
from sidecar.auth.replay import ReplayCache
from sidecar.clock import Clock, SystemClock
from sidecar.config import loader, runtime
from sidecar.config.live import LiveConfig
from sidecar.config.reload import Reloader
from sidecar.coordination.base import Coordination
from sidecar.coordination.local import LocalCoordination
from sidecar.credentials.store import CredentialStore
from sidecar.dnsrecords.follow import DnsRecordFollower
from sidecar.dnsrecords.index import DnsRecordIndex
from sidecar.dnsrecords.metadata import BareValues
from sidecar.health import HealthCache
from sidecar.management import ManagementApi, Readiness
from sidecar.observability.access import AccessLog
from sidecar.observability.inflight import InFlight
from sidecar.observability.metrics import Metrics
from sidecar.protocol.endpoints import Serve
from sidecar.protocol.handlers import ProtocolApi
from sidecar.protocol.request_path import request_path
from sidecar.protocol.tls import LiveCertificate, TlsError
from sidecar.settings import Settings
from sidecar.sweeps.metrics import SweepMetrics
from sidecar.sweeps.sweeper import Sweeper
from sidecar.tasks import Tasks

if TYPE_CHECKING:
    from sidecar.credentials.kubernetes import KubernetesObjects

LIVE = web.AppKey("live", LiveConfig)
METRICS = web.AppKey("metrics", Metrics)
VERIFIER = web.AppKey("verifier", Verifier)
STORE = web.AppKey("store", CredentialStore)
MANAGEMENT = web.AppKey("management", web.Application)
MANAGEMENT_API = web.AppKey("management_api", ManagementApi)
IN_FLIGHT = web.AppKey("in_flight", InFlight)
RELOADER = web.AppKey("reloader", Reloader)
COORDINATION = web.AppKey("coordination", Coordination)
DNS_RECORDS = web.AppKey("dns_records", DnsRecordIndex)  # the DNSRecords read (a DnsRecordView)
BARE_VALUES = web.AppKey("bare_values", BareValues)
SWEEPER = web.AppKey("sweeper", Sweeper)
SERVE = web.AppKey[Serve]("serve")  # the protocol's request path: the port's one handler
TLS = web.AppKey("tls", LiveCertificate)  # set when the protocol port speaks HTTPS

log = logging.getLogger(__name__)


class StartupError(Exception):
    """The service must not start as configured; the message says why and what to do."""


@dataclass
class Loaded:
    runtime: runtime.Runtime
    digest: str | None = None  # of the routing table file, when there is one


def load_runtime(
    settings: Settings,
    store: CredentialStore,
    clock: Clock,
    coordination: Coordination,
) -> Loaded:
    """The routing table file when one is set, else seed-compatible mode or the default."""
    path = settings.table.config
    if path is None:
        return Loaded(runtime.without_table(settings, coordination=coordination, clock=clock))
    table = loader.read(path)
    built = runtime.build(
        table.spec, settings, source=str(path), store=store, clock=clock, coordination=coordination
    )
    return Loaded(built, table.digest)


def make_coordination(settings: Settings, clock: Clock, metrics: Metrics) -> Coordination:
    """Shared state in Redis when ``DNS_SIDECAR_REDIS_URL`` is set, else in this process: the
    one place that decides; everything below takes the result as a required argument."""
    if settings.redis.url is None:
        return LocalCoordination(ReplayCache(settings.auth.replay_cache_size), clock)
    from sidecar.coordination.shared import RedisCoordination  # noqa: PLC0415 - redis, lazily

    return RedisCoordination(
        settings.redis,
        provider_timeout=settings.server.provider_timeout,
        clock=clock,
        registry=metrics.registry,
    )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_exposure(settings: Settings, current: runtime.Runtime) -> None:
    """Unsigned requests are accepted only on a loopback address, or when explicitly allowed."""
    server = settings.server
    open_to_unsigned = not current.clients or any(
        isinstance(state := client.state(), ClientAuth) and not state.secrets
        for client in current.clients
        if client.kind is not ClientKind.DNS_CLASS  # read only once the API is reachable
    )
    if open_to_unsigned and not is_loopback(server.host) and not server.allow_unauthenticated:
        raise StartupError(
            f"Refusing to listen on {server.host} without an HMAC secret: anyone who can reach "
            "the port could change DNS records. Set HMAC_SECRET (or clients in the routing "
            "table), listen on 127.0.0.1, or pass --allow-unauthenticated."
        )


def live_certificate(settings: Settings, metrics: Metrics, clock: Clock) -> LiveCertificate | None:
    """The protocol port's certificate pair when HTTPS is configured; one that does not load
    keeps the service from starting (nothing would be served)."""
    if not settings.tls.enabled:
        return None
    try:
        return LiveCertificate(settings.tls, settings.table, metrics.registry, clock)
    except TlsError as err:
        raise StartupError(f"Cannot serve HTTPS: {err}.") from err


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    initial: runtime.Runtime | None = None,
    store: CredentialStore | None = None,
) -> web.Application:
    """The protocol app; the management app hangs off it under ``MANAGEMENT``."""
    clock = clock or SystemClock()
    metrics = Metrics()
    store = store or make_store(settings, metrics)
    coordination = make_coordination(settings, clock, metrics)
    loaded = Loaded(initial) if initial else load_runtime(settings, store, clock, coordination)
    check_exposure(settings, loaded.runtime)
    config_file = str(settings.table.config) if settings.table.config else None
    live = LiveConfig(loaded.runtime, config_file=config_file)
    verifier = _verifier(settings, coordination, clock)
    metrics.watch_replay_cache(lambda: len(verifier.replay))
    metrics.config_generation.set_function(lambda: float(live.generation))
    health = HealthCache(clock, settings.server.health_cache_seconds)
    access = AccessLog()  # after logging is configured: it writes JSON lines itself then

    app = web.Application()  # the lifecycle and the shared objects; requests go to SERVE
    app[LIVE] = live
    app[METRICS] = metrics
    app[VERIFIER] = verifier
    app[IN_FLIGHT] = in_flight = InFlight(metrics.in_flight)
    app[STORE] = store
    app[COORDINATION] = coordination
    follower = _add_dns_records(app, settings, clock)
    if (tls := live_certificate(settings, metrics, clock)) is not None:
        app[TLS] = tls
    app[SERVE] = request_path(  # no route: the protocol port hands every request to it
        endpoints=ProtocolApi(
            health, metrics, clock, coordination.problem, app[BARE_VALUES]
        ).endpoints(),
        verifier=verifier,
        live=live,
        metrics=metrics,
        in_flight=in_flight,
        access=access,
        max_body=settings.server.max_body_bytes,
    )
    sweeps = Tasks("sweeps")
    readiness = _add_management(app, health, sweeps)
    if settings.table.config is not None:
        app[RELOADER] = Reloader(
            live,
            settings.table.config,
            settings,
            store,
            clock,
            loaded_digest=loaded.digest,
            on_result=lambda result: _reloaded(result, metrics, live, follower),
            coordination=coordination,
        )
    _add_lifecycle(
        app, settings=settings, follower=follower, sweeps=sweeps, access=access, readiness=readiness
    )
    return app


def make_store(settings: Settings, metrics: Metrics) -> CredentialStore:
    """The credential store, on a Kubernetes client made only once something needs one."""
    return CredentialStore(_kubernetes(settings, metrics))


def _kubernetes(settings: Settings, metrics: Metrics) -> Callable[[], KubernetesObjects]:
    """How the credential store connects to Kubernetes, once the routing table needs it."""
    k8s = settings.kubernetes

    def connect() -> KubernetesObjects:
        from sidecar.credentials.kubernetes import KubernetesObjects  # noqa: PLC0415 - large, lazy

        return KubernetesObjects(
            kubeconfig=k8s.kubeconfig,
            namespace=k8s.namespace,
            in_cluster=k8s.in_cluster,
            settings=settings.watch,
            on_change=lambda kind: metrics.kubernetes_changes.labels(kind).inc(),
        )

    return connect


def _verifier(settings: Settings, coordination: Coordination, clock: Clock) -> Verifier:
    """The HMAC verifier: unsigned requests only on loopback or when explicitly allowed."""
    server = settings.server
    allow_unsigned = is_loopback(server.host) or server.allow_unauthenticated
    return Verifier(
        coordination.nonces,
        clock,
        VerifyPolicy(skew=settings.auth.timestamp_skew, allow_unsigned=allow_unsigned),
    )


def _add_dns_records(app: web.Application, settings: Settings, clock: Clock) -> DnsRecordFollower:
    """The operator's DNSRecords (SPEC section 9): their read (``DNS_RECORDS``), the numbers of
    bare MX and SRV values (``BARE_VALUES``) and the sweeps (``SWEEPER``, looping with the app)."""
    k8s = settings.kubernetes
    follower = DnsRecordFollower(
        app[STORE], k8s.dnsrecord_scopes, read_timeout=settings.watch.list_timeout
    )
    app[DNS_RECORDS] = follower.index
    app[BARE_VALUES] = BareValues(follower.index, follower.fetch, wait=k8s.dnsrecord_wait)
    app[SWEEPER] = Sweeper(
        app[LIVE],
        follower.index,
        settings.sweeps,
        deployment=settings.table.owner_id,
        clock=clock,
        turns=app[COORDINATION].turns,
        metrics=SweepMetrics(app[METRICS].registry),
    )
    return follower


def _add_management(app: web.Application, health: HealthCache, sweeps: Tasks) -> Readiness:
    """The management app (``MANAGEMENT``) over the objects ``app`` holds; its readiness."""
    store, sweeper, tls = app[STORE], app[SWEEPER], app.get(TLS)

    def loops() -> dict[str, dict[str, Any]]:
        reloader = app.get(RELOADER)
        return {
            **(reloader.tasks.status() if reloader else {}),
            **store.loops(),
            **sweeps.status(),
            **(tls.tasks.status() if tls else {}),
        }

    api = ManagementApi(
        app[LIVE],
        health,
        app[VERIFIER],
        app[METRICS],
        coordination=app[COORDINATION],
        loops=loops,
        dns_records=lambda: app[DNS_RECORDS].status() | {"sweeps": sweeper.status()},
        tls=tls.status if tls else None,
    )
    management = web.Application()
    management.add_routes(api.routes())
    app[MANAGEMENT] = management
    app[MANAGEMENT_API] = api
    return api.readiness


def _reloaded(result: str, metrics: Metrics, live: LiveConfig, follower: DnsRecordFollower) -> None:
    metrics.reloads.labels(result).inc()
    if result == "success":  # the DNSClasses served may have changed
        follower.follow(live.current.dns_classes)


def _add_lifecycle(
    app: web.Application,
    *,
    settings: Settings,
    follower: DnsRecordFollower,
    sweeps: Tasks,
    access: AccessLog,
    readiness: Readiness,
) -> None:
    """One cleanup context per long-lived resource: aiohttp starts them in this order and
    closes them in the reverse one; a failed start closes those already started. Readiness is
    the last step, so ``/readyz`` turns 200 only once everything before it is up."""
    coordination, store = app[COORDINATION], app[STORE]

    async def shared_state(app: web.Application) -> AsyncIterator[None]:
        await coordination.start()
        yield
        await coordination.aclose()

    async def credentials(app: web.Application) -> AsyncIterator[None]:
        await store.start()
        try:
            current = app[LIVE].current
            await store.track(current.credentials, current.dns_classes)
            follower.follow(current.dns_classes)  # the DNSRecords of the DNSClasses served
            await store.wait_synced(settings.kubernetes.sync_timeout)
            yield
        finally:
            await store.stop()

    async def providers(app: web.Application) -> AsyncIterator[None]:
        yield
        await app[LIVE].current.aclose()  # the table in force at exit, not at start

    async def access_log(app: web.Application) -> AsyncIterator[None]:
        yield
        access.flush()  # the last lines buffered

    async def serving(app: web.Application) -> AsyncIterator[None]:
        readiness.started()  # every step above is up: requests can be served
        yield

    app.cleanup_ctx.extend((shared_state, credentials, providers))
    app.cleanup_ctx.extend(_background(app, settings.sweeps.interval, sweeps))
    app.cleanup_ctx.extend((access_log, serving))


Context = Callable[[web.Application], AsyncIterator[None]]


def _background(app: web.Application, sweep_interval: float, sweeps: Tasks) -> list[Context]:
    """The loops that follow the world once the credentials are read: sweeps, the routing
    table's reloads, the certificate pair's renewals (those configured)."""

    async def sweeping(app: web.Application) -> AsyncIterator[None]:
        if sweep_interval > 0:  # SPEC section 9: 0 turns sweeps off
            sweeps.loop("sweeps", app[SWEEPER].run_forever)
        yield
        await sweeps.aclose()

    async def reloading(app: web.Application) -> AsyncIterator[None]:
        async with app[RELOADER].running():
            yield

    async def certificate(app: web.Application) -> AsyncIterator[None]:
        async with app[TLS].running():
            yield

    contexts: list[Context] = [sweeping]
    if RELOADER in app:
        contexts.append(reloading)
    if TLS in app:
        contexts.append(certificate)
    return contexts
