"""The Kubernetes API client, and the objects followed through it: Secrets for credentials,
DNSClasses for HMAC settings, each by an :class:`~sidecar.credentials.watch.ObjectWatch`; the
operator's DNSRecords, all of them, by a :class:`~sidecar.credentials.collection.CollectionWatch`
(and one read by name when it must be as it is now).

The only module that imports ``kubernetes_asyncio``: in-cluster configuration when the pod's
``KUBERNETES_SERVICE_HOST`` is set (read by ``sidecar.settings``), a kubeconfig otherwise, chosen
explicitly. Watches start only by an explicit ``watch_secret``/``watch_dns_class`` (called where
the routing table is applied); ``secret``/``dns_class`` only look.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from kubernetes_asyncio import client as k8s
from kubernetes_asyncio import config as k8s_config
from kubernetes_asyncio.config.config_exception import ConfigException

from sidecar.credentials.collection import CollectionSink, CollectionWatch
from sidecar.credentials.objects import DNSClass, DNSRecord, Secret
from sidecar.credentials.watch import ApiError, Lister, ObjectWatch, reason_of
from sidecar.settings import WatchSettings
from sidecar.tasks import Backoff, Tasks

log = logging.getLogger(__name__)

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
DNSCLASS_GROUP, DNSCLASS_VERSION, DNSCLASS_PLURAL = (
    "dns.homelab.mortenolsen.pro",
    "v1alpha1",
    "dnsclasses",
)
DNSRECORD_PLURAL = "dnsrecords"
DNSRECORD_RBAC = (
    "a ClusterRole granting get, list and watch on dnsrecords "
    "(dns.homelab.mortenolsen.pro) must be bound to the sidecar's ServiceAccount"
)


def _raw(call: Callable[..., Awaitable[Any]]) -> Lister:
    """A generated list call that answers raw responses and raises the watch's ``ApiError``."""

    async def lister(**kwargs: Any) -> Any:
        try:
            return await call(**kwargs)
        except k8s.ApiException as err:
            raise ApiError(err.status or 500, err.reason) from err

    return lister


class KubernetesObjects:
    """An API client (in-cluster or kubeconfig) and the watches of the objects asked for."""

    def __init__(
        self,
        *,
        kubeconfig: Path | None = None,
        namespace: str | None = None,
        in_cluster: bool = False,
        settings: WatchSettings | None = None,
        on_change: Callable[[str], None] = lambda kind: None,
    ) -> None:
        self._kubeconfig = kubeconfig
        self._namespace = namespace
        self._in_cluster = in_cluster
        self._settings = settings or WatchSettings()
        self._listeners: list[Callable[[str], None]] = [on_change]
        self._api: k8s.ApiClient | None = None
        self._setup_error: str | None = None
        self._context_namespace: str | None = None
        # Secrets and DNSClasses side by side; the getters below say which is which
        self._watches: dict[tuple[str, ...], ObjectWatch[Any]] = {}
        self._collections: dict[str, CollectionWatch] = {}  # the DNSRecords, by loop name
        self._tasks = Tasks("kubernetes")  # each watch a supervised loop, with its own backoff

    @property
    def default_namespace(self) -> str:
        if self._namespace:
            return self._namespace
        if self._context_namespace:
            return str(self._context_namespace)
        try:
            return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or "default"
        except OSError:
            return "default"  # POD_NAMESPACE, when set, came in as ``namespace``

    async def start(self) -> None:
        """Connect: in-cluster when in a pod (and no kubeconfig is given), else a kubeconfig."""
        configuration = k8s.Configuration()
        try:
            if self._in_cluster and self._kubeconfig is None:
                k8s_config.load_incluster_config(  # type: ignore[no-untyped-call]
                    client_configuration=configuration
                )
            else:
                loader = await k8s_config.load_kube_config(
                    config_file=str(self._kubeconfig) if self._kubeconfig else None,
                    client_configuration=configuration,
                )
                context = (loader.current_context or {}).get("context") or {}
                self._context_namespace = context.get("namespace")
        except (ConfigException, OSError, TypeError) as err:
            self._setup_error = (
                "no Kubernetes API: not in a cluster and no usable kubeconfig "
                f"({err}); set KUBECONFIG or DNS_SIDECAR_KUBECONFIG"
            )
            log.warning("%s", self._setup_error)
            return
        self._api = k8s.ApiClient(configuration)

    async def stop(self) -> None:
        await self._tasks.aclose()
        self._watches.clear()
        self._collections.clear()
        if self._api is not None:
            await self._api.close()
            self._api = None

    def watch_secret(self, namespace: str, name: str) -> None:
        """Follow Secret ``namespace/name`` from now on (nothing new if it is followed)."""
        self._follow(
            ("Secret", namespace, name),
            f"Secret {namespace}/{name}",
            lambda api: _raw(
                functools.partial(k8s.CoreV1Api(api).list_namespaced_secret, namespace)
            ),
            name,
        )

    def watch_dns_class(self, name: str) -> None:
        """Follow DNSClass ``name`` from now on (nothing new if it is followed)."""
        self._follow(
            ("DNSClass", name),
            f"DNSClass {name}",
            lambda api: _raw(
                functools.partial(
                    k8s.CustomObjectsApi(api).list_cluster_custom_object,
                    DNSCLASS_GROUP,
                    DNSCLASS_VERSION,
                    DNSCLASS_PLURAL,
                )
            ),
            name,
        )

    def watch_dns_records(self, namespaces: Sequence[str], sink: CollectionSink) -> bool:
        """Follow every DNSRecord, of ``namespaces`` (one watch each; empty: one watch across
        all namespaces), into ``sink``, replacing the watches already running (so the next pass
        lists anew). False when there is no API client to watch with."""
        self.stop_dns_records()
        if self._api is None:
            return False
        api = k8s.CustomObjectsApi(self._api)
        scopes: list[str | None] = [*namespaces] or [None]
        for scope in scopes:
            if scope is None:
                describe = "DNSRecords in all namespaces"
                call = functools.partial(
                    api.list_cluster_custom_object,
                    DNSCLASS_GROUP,
                    DNSCLASS_VERSION,
                    DNSRECORD_PLURAL,
                )
            else:
                describe = f"DNSRecords in namespace {scope}"
                call = functools.partial(
                    api.list_namespaced_custom_object,
                    DNSCLASS_GROUP,
                    DNSCLASS_VERSION,
                    scope,
                    DNSRECORD_PLURAL,
                )
            watch = CollectionWatch(
                describe, _raw(call), sink, scope, self._settings, forbidden_hint=DNSRECORD_RBAC
            )
            name = f"watch {describe}"
            self._collections[name] = watch
            self._tasks.loop(name, watch.watch_forever, _RESTART)
        return True

    def stop_dns_records(self) -> None:
        """Stop following DNSRecords."""
        for name in list(self._collections):
            self._tasks.discard(name)
            del self._collections[name]

    async def dns_record(self, namespace: str, name: str, seconds: float) -> DNSRecord | None:
        """DNSRecord ``namespace/name`` as it is now (a GET, read from etcd); ``None`` when it
        does not exist; ``ApiError`` when the API server refuses."""
        if self._api is None:
            raise ApiError(503, self.unavailable)
        api = k8s.CustomObjectsApi(self._api)
        try:
            reply = await api.get_namespaced_custom_object(
                DNSCLASS_GROUP,
                DNSCLASS_VERSION,
                namespace,
                DNSRECORD_PLURAL,
                name,
                _preload_content=False,
                _request_timeout=seconds,
            )
        except k8s.ApiException as err:  # pragma: no cover - raw replies raise no ApiException
            raise ApiError(err.status or 500, err.reason) from err
        async with reply:
            if reply.status == 404:
                return None
            text = await reply.text()
            if reply.status >= 400:
                raise ApiError(reply.status, reason_of(text[:300], reply.reason))
        found: DNSRecord = json.loads(text)
        return found

    def secret(self, namespace: str, name: str) -> ObjectWatch[Secret] | None:
        """The watch of Secret ``namespace/name``; ``None`` unless it is followed."""
        return self._watched(("Secret", namespace, name))

    def dns_class(self, name: str) -> ObjectWatch[DNSClass] | None:
        """The watch of DNSClass ``name``; ``None`` unless it is followed."""
        return self._watched(("DNSClass", name))

    def _watched(self, key: tuple[str, ...]) -> ObjectWatch[Any] | None:
        return self._watches.get(key)

    def keep_only(self, kind: str, keys: set[tuple[str, ...]]) -> None:
        """Stop following objects of ``kind`` that are no longer referenced."""
        for key in [key for key in self._watches if key[0] == kind and key not in keys]:
            self._tasks.discard(_loop_name(self._watches.pop(key)))

    async def wait_synced(self, seconds: float) -> None:
        """Wait (bounded) until every followed object has been listed once, or failed; also
        those whose watch starts meanwhile (the Secret a DNSClass names, once it is read)."""

        async def all_synced() -> None:
            while pending := [w for w in self._watches.values() if not w.synced.is_set()]:
                await asyncio.gather(*(w.synced.wait() for w in pending))

        try:
            await asyncio.wait_for(all_synced(), seconds)
        except TimeoutError:
            log.warning("Kubernetes objects not all read within %.0f s", seconds)

    def _notify(self, kind: str) -> None:
        for listener in self._listeners:
            listener(kind)

    def on_change(self, listener: Callable[[str], None]) -> None:
        self._listeners.append(listener)

    def loops(self) -> dict[str, dict[str, Any]]:
        """Each watch as a supervised loop, as ``/status`` shows loops: down while its last
        pass failed (``lastError`` says why) or while its loop is being restarted."""
        supervised = self._tasks.status()
        shown: dict[str, dict[str, Any]] = {}
        for watch in self._watches.values():
            name = _loop_name(watch)
            state = supervised[name]  # started together with the watch
            if watch.error is not None:
                state = state | {"running": False, "lastError": watch.error}
            shown[name] = state
        for name, collection in self._collections.items():
            state = supervised[name]
            if collection.error is not None:
                state = state | {"running": False, "lastError": collection.error}
            shown[name] = state
        return dict(sorted(shown.items()))

    @property
    def unavailable(self) -> str | None:
        return self._setup_error if self._api is None else None

    def _follow(
        self,
        key: tuple[str, ...],
        describe: str,
        make_lister: Callable[[k8s.ApiClient], Lister],
        name: str,
    ) -> None:
        if key in self._watches or self._api is None:
            return
        watch: ObjectWatch[Any] = ObjectWatch(
            describe, make_lister(self._api), name, self._settings, key[0], self._notify
        )
        self._watches[key] = watch
        self._tasks.loop(_loop_name(watch), watch.watch_forever, _RESTART)


# watch_forever handles every failure itself; this is for a bug that escapes it anyway
_RESTART = Backoff(initial=1.0, maximum=60.0)


def _loop_name(watch: ObjectWatch[Any]) -> str:
    return f"watch {watch.describe}"
