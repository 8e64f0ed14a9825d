"""Kubernetes objects kept current by list + watch: Secrets for credentials, DNSClasses for HMAC.

The only module that imports ``kubernetes_asyncio``. One :class:`ObjectWatch` follows one named
object through ``fieldSelector=metadata.name=NAME`` (so a Role limited by ``resourceNames``
suffices): list, remember the ``resourceVersion``, watch from it with bookmarks, re-list on
``410 Gone``, and reconnect with jittered backoff after any failure. ``watch_once`` does one
list-and-watch pass and returns; ``watch_forever`` only loops it.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio import config as k8s_config
from kubernetes_asyncio.config.config_exception import ConfigException

from sidecar import background

log = logging.getLogger(__name__)

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
DNSCLASS_GROUP, DNSCLASS_VERSION, DNSCLASS_PLURAL = (
    "dns.homelab.mortenolsen.pro",
    "v1alpha1",
    "dnsclasses",
)

Lister = Callable[..., Awaitable[Any]]


class Gone(Exception):
    """The resourceVersion we watch from was compacted away: list again."""


@dataclass
class WatchSettings:
    list_timeout: float = 10.0  # seconds for a list request
    watch_seconds: int = 290  # the server ends each watch after this; we then watch again
    backoff_initial: float = 0.5
    backoff_max: float = 30.0


@dataclass
class ObjectWatch:
    """The current state of one named object; ``None`` while it does not exist."""

    describe: str  # for messages: "Secret dns-system/cf-personal"
    lister: Lister  # a generated list_* call with its path arguments bound
    name: str
    settings: WatchSettings = field(default_factory=WatchSettings)
    kind: str = "object"
    on_change: Callable[[str], None] = lambda kind: None
    object: dict[str, Any] | None = None
    synced: asyncio.Event = field(default_factory=asyncio.Event)
    error: str | None = None  # why the last pass failed, while it stays failed
    resource_version: str | None = None
    changes: int = 0

    async def watch_forever(self) -> None:
        """Keep following the object; failures are logged and retried with backoff."""
        delay = self.settings.backoff_initial
        while True:
            try:
                await self.watch_once()
                delay = self.settings.backoff_initial  # a clean end: the server closed the watch
                continue
            except Gone:
                log.info("%s: resourceVersion expired, listing again", self.describe)
                self.resource_version = None
                continue
            except asyncio.CancelledError:
                raise
            except Exception as err:  # noqa: BLE001 - every failure is retried, and reported
                self.error = _describe_error(err, self.describe)
                self.synced.set()  # callers waiting for the first state get the error instead
                log.warning("%s: %s; retrying in %.1f s", self.describe, self.error, delay)
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))  # noqa: S311 - jitter only
            delay = min(delay * 2, self.settings.backoff_max)

    async def watch_once(self) -> None:
        """List (unless a resourceVersion is known), then watch until the stream ends."""
        if self.resource_version is None:
            await self._list()
        await self._watch()

    async def _list(self) -> None:
        reply = await self._request(watch=False, limit=self.settings.list_timeout)
        async with reply:
            body = await reply.json()
        items = body.get("items") or []
        self.resource_version = str(body.get("metadata", {}).get("resourceVersion") or "") or None
        self._set(items[0] if items else None)
        self.error = None
        self.synced.set()

    async def _watch(self) -> None:
        reply = await self._request(
            watch=True,
            limit=aiohttp.ClientTimeout(
                connect=self.settings.list_timeout, sock_read=self.settings.watch_seconds + 30
            ),
        )
        async with reply:
            self.error = None  # connected again
            async for line in reply.content:
                if line.strip():
                    self._event(json.loads(line))

    async def _request(self, *, watch: bool, limit: Any) -> aiohttp.ClientResponse:
        kwargs: dict[str, Any] = {
            "field_selector": f"metadata.name={self.name}",
            "_preload_content": False,
            "_request_timeout": limit,
        }
        if watch:
            kwargs |= {
                "watch": True,
                "allow_watch_bookmarks": True,
                "timeout_seconds": self.settings.watch_seconds,
                "resource_version": self.resource_version,
            }
        try:
            reply: aiohttp.ClientResponse = await self.lister(**kwargs)
        except k8s.ApiException as err:
            if err.status == 410:
                raise Gone from err
            raise
        if reply.status == 410:
            reply.release()
            raise Gone
        if reply.status >= 400:
            text = (await reply.text())[:300]
            reply.release()
            raise k8s.ApiException(status=reply.status, reason=_reason(text, reply.reason))
        return reply

    def _event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        obj = event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise Gone
            raise k8s.ApiException(status=obj.get("code") or 500, reason=obj.get("message"))
        version = (obj.get("metadata") or {}).get("resourceVersion")
        if version:
            self.resource_version = str(version)
        if kind == "BOOKMARK":
            return
        if (obj.get("metadata") or {}).get("name") != self.name:
            return
        self._set(None if kind == "DELETED" else obj)

    def _set(self, obj: dict[str, Any] | None) -> None:
        before = _content(self.object)
        self.object = obj
        if _content(obj) != before:
            self.changes += 1
            self.on_change(self.kind)


def _content(obj: dict[str, Any] | None) -> Any:
    if obj is None:
        return None
    return {key: value for key, value in obj.items() if key != "metadata"}


def _reason(text: str, fallback: str | None) -> str:
    try:
        return str(json.loads(text).get("message") or fallback)
    except (ValueError, AttributeError):
        return text or str(fallback)


def _describe_error(err: Exception, what: str) -> str:
    if isinstance(err, k8s.ApiException):
        if err.status == 403:
            return (
                f"the API server forbids reading {what} ({err.reason}); the Role needs get, list "
                "and watch on it (resourceNames may name it)"
            )
        return f"the API server answered {err.status} for {what}: {err.reason}"
    if isinstance(err, TimeoutError | asyncio.TimeoutError):
        return f"the API server did not answer in time for {what}"
    return f"cannot reach the API server for {what}: {err}"


class KubernetesObjects:
    """An API client (in-cluster or kubeconfig) and the watches of the objects asked for."""

    def __init__(
        self,
        *,
        kubeconfig: Path | None = None,
        namespace: str | None = None,
        settings: WatchSettings | None = None,
        on_change: Callable[[str], None] = lambda kind: None,
    ) -> None:
        self._kubeconfig = kubeconfig
        self._namespace = namespace
        self._settings = settings or WatchSettings()
        self._listeners: list[Callable[[str], None]] = [on_change]
        self._api: k8s.ApiClient | None = None
        self._setup_error: str | None = None
        self._context_namespace: str | None = None
        self._watches: dict[tuple[str, ...], tuple[ObjectWatch, asyncio.Task[None]]] = {}

    @property
    def default_namespace(self) -> str:
        if self._namespace:
            return self._namespace
        if self._context_namespace:
            return str(self._context_namespace)
        try:
            return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or "default"
        except OSError:
            return os.environ.get("POD_NAMESPACE") or "default"

    async def start(self) -> None:
        """Connect: in-cluster when ``KUBERNETES_SERVICE_HOST`` is set, else a kubeconfig."""
        configuration = k8s.Configuration()
        try:
            if os.environ.get("KUBERNETES_SERVICE_HOST") and self._kubeconfig is None:
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
        await background.cancel(task for _, task in self._watches.values())
        self._watches.clear()
        if self._api is not None:
            await self._api.close()
            self._api = None

    def secret(self, namespace: str, name: str) -> ObjectWatch | None:
        return self._follow(
            ("Secret", namespace, name),
            f"Secret {namespace}/{name}",
            lambda api: functools.partial(k8s.CoreV1Api(api).list_namespaced_secret, namespace),
            name,
        )

    def dns_class(self, name: str) -> ObjectWatch | None:
        return self._follow(
            ("DNSClass", name),
            f"DNSClass {name}",
            lambda api: functools.partial(
                k8s.CustomObjectsApi(api).list_cluster_custom_object,
                DNSCLASS_GROUP,
                DNSCLASS_VERSION,
                DNSCLASS_PLURAL,
            ),
            name,
        )

    def keep_only(self, kind: str, keys: set[tuple[str, ...]]) -> None:
        """Stop following objects of ``kind`` that are no longer referenced."""
        for key in [key for key in self._watches if key[0] == kind and key not in keys]:
            _, task = self._watches.pop(key)
            task.cancel()

    async def wait_synced(self, seconds: float) -> None:
        """Wait (bounded) until every followed object has been listed once, or failed; also
        those whose watch starts meanwhile (the Secret a DNSClass names, once it is read)."""

        async def all_synced() -> None:
            while pending := [w for w, _ in self._watches.values() if not w.synced.is_set()]:
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

    @property
    def unavailable(self) -> str | None:
        return self._setup_error if self._api is None else None

    def _follow(
        self,
        key: tuple[str, ...],
        describe: str,
        make_lister: Callable[[k8s.ApiClient], Lister],
        name: str,
    ) -> ObjectWatch | None:
        found = self._watches.get(key)
        if found is not None:
            return found[0]
        if self._api is None:
            return None
        watch = ObjectWatch(
            describe, make_lister(self._api), name, self._settings, key[0], self._notify
        )
        task = asyncio.get_running_loop().create_task(
            watch.watch_forever(), name=f"watch {describe}"
        )
        self._watches[key] = (watch, task)
        return watch
