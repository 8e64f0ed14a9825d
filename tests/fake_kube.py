"""A fake Kubernetes API server on loopback: Secrets and DNSClasses, list and watch.

Enough of the real protocol for the real ``kubernetes_asyncio`` client: lists carry a
``resourceVersion``; watches replay history after the given version and then stream new events
as JSON lines, with BOOKMARK events on demand; a compacted version gets a 410 ERROR event; a
list or watch without ``fieldSelector=metadata.name=...`` is forbidden (403), as it is for a
Role limited by ``resourceNames``. Tests can compact history, drop every watch connection, and
forbid single objects.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

Key = tuple[str, str, str]  # kind, namespace ("" for cluster-scoped), name
GROUP = "dns.homelab.mortenolsen.pro"


@dataclass
class _Watcher:
    key: Key
    queue: asyncio.Queue[dict[str, Any] | None] = field(default_factory=asyncio.Queue)


@dataclass
class FakeKube:
    objects: dict[Key, dict[str, Any]] = field(default_factory=dict)
    history: list[tuple[int, str, Key, dict[str, Any]]] = field(default_factory=list)
    version: int = 100
    compacted_below: int = 0
    forbidden: set[Key] = field(default_factory=set)
    watchers: list[_Watcher] = field(default_factory=list)
    lists: int = 0
    watches: int = 0
    unselected: int = 0
    held: dict[Key, asyncio.Event] = field(default_factory=dict)  # lists that wait for a release
    waiting: set[Key] = field(default_factory=set)  # held lists that have arrived

    # --- changing the cluster ------------------------------------------------------------

    def set_secret(self, namespace: str, name: str, data: dict[str, str]) -> None:
        encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
        self._put(
            ("Secret", namespace, name),
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "type": "Opaque",
                "data": encoded,
                "metadata": {"name": name, "namespace": namespace},
            },
        )

    def set_dns_class(self, name: str, spec: dict[str, Any]) -> None:
        self._put(
            ("DNSClass", "", name),
            {
                "apiVersion": f"{GROUP}/v1alpha1",
                "kind": "DNSClass",
                "spec": spec,
                "metadata": {"name": name},
            },
        )

    def delete(self, kind: str, namespace: str, name: str) -> None:
        key = (kind, namespace, name)
        obj = self.objects.pop(key)
        self._event("DELETED", key, obj)

    def hold(self, kind: str, namespace: str, name: str) -> asyncio.Event:
        """Make the lists of one object wait until the returned event is set (a slow API server);
        ``waiting`` shows when one has arrived."""
        return self.held.setdefault((kind, namespace, name), asyncio.Event())

    def compact(self) -> None:
        """Forget history: watches from versions older than the current one get 410 Gone."""
        self.compacted_below = self.version
        self.history.clear()

    def drop_watches(self) -> None:
        """Close every watch connection, as a restarting API server would."""
        for watcher in self.watchers:
            watcher.queue.put_nowait(None)

    def bookmark(self) -> None:
        self.version += 1
        for watcher in self.watchers:
            watcher.queue.put_nowait(
                {
                    "type": "BOOKMARK",
                    "object": {
                        "kind": watcher.key[0],
                        "metadata": {"resourceVersion": str(self.version)},
                    },
                }
            )

    def expire_watches(self) -> None:
        """Send 410 Gone as an ERROR event on every open watch."""
        for watcher in self.watchers:
            watcher.queue.put_nowait(
                {
                    "type": "ERROR",
                    "object": {
                        "kind": "Status",
                        "code": 410,
                        "reason": "Expired",
                        "message": "too old resource version",
                    },
                }
            )

    def _put(self, key: Key, obj: dict[str, Any]) -> None:
        kind = "MODIFIED" if key in self.objects else "ADDED"
        self.objects[key] = obj
        self._event(kind, key, obj)

    def _event(self, kind: str, key: Key, obj: dict[str, Any]) -> None:
        self.version += 1
        obj["metadata"]["resourceVersion"] = str(self.version)
        self.history.append((self.version, kind, key, json.loads(json.dumps(obj))))
        for watcher in self.watchers:
            if watcher.key == key:
                watcher.queue.put_nowait({"type": kind, "object": obj})

    # --- the API -----------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        app.add_routes(
            [
                web.get("/api/v1/namespaces/{namespace}/secrets", self._secrets),
                web.get(f"/apis/{GROUP}/v1alpha1/dnsclasses", self._dns_classes),
            ]
        )
        return app

    async def _secrets(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, "Secret", request.match_info["namespace"])

    async def _dns_classes(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, "DNSClass", "")

    async def _serve(self, request: web.Request, kind: str, namespace: str) -> web.StreamResponse:
        selector = request.query.get("fieldSelector", "")
        if not selector.startswith("metadata.name="):
            self.unselected += 1
            return _status(
                403,
                "Forbidden",
                f"{kind.lower()}s is forbidden: cannot list "
                "without a fieldSelector (the Role names resources)",
            )
        key = (kind, namespace, selector.removeprefix("metadata.name="))
        if key in self.forbidden:
            return _status(403, "Forbidden", f'{kind.lower()}s "{key[2]}" is forbidden')
        if request.query.get("watch") in ("true", "1", "True"):
            return await self._watch(request, key)
        self.lists += 1
        if key in self.held:
            self.waiting.add(key)
            await self.held[key].wait()
        items = [self.objects[key]] if key in self.objects else []
        return web.json_response(
            {
                "kind": f"{kind}List",
                "apiVersion": "v1",
                "metadata": {"resourceVersion": str(self.version)},
                "items": items,
            }
        )

    async def _watch(self, request: web.Request, key: Key) -> web.StreamResponse:
        self.watches += 1
        since = int(request.query.get("resourceVersion") or 0)
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        if since and since < self.compacted_below:
            await _send(
                response,
                {
                    "type": "ERROR",
                    "object": {
                        "kind": "Status",
                        "code": 410,
                        "reason": "Expired",
                        "message": f"too old resource version: {since}",
                    },
                },
            )
            return response
        watcher = _Watcher(key)
        for version, kind, event_key, obj in self.history:
            if version > since and event_key == key:
                watcher.queue.put_nowait({"type": kind, "object": obj})
        self.watchers.append(watcher)
        timeout = float(request.query.get("timeoutSeconds") or 300)
        try:
            while True:
                try:
                    event = await asyncio.wait_for(watcher.queue.get(), timeout)
                except TimeoutError:
                    break
                if event is None:
                    request.transport.close() if request.transport else None  # an abrupt drop
                    break
                await _send(response, event)
        finally:
            self.watchers.remove(watcher)
        return response

    def kubeconfig(self, path: Path, port: int) -> Path:
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "current-context": "fake",
                    "clusters": [
                        {"name": "fake", "cluster": {"server": f"http://127.0.0.1:{port}"}}
                    ],
                    "users": [{"name": "fake", "user": {"token": "fake-token"}}],
                    "contexts": [
                        {
                            "name": "fake",
                            "context": {
                                "cluster": "fake",
                                "user": "fake",
                                "namespace": "dns-system",
                            },
                        }
                    ],
                }
            )
        )
        return path

    def open_watches(self) -> Iterator[Key]:
        return (watcher.key for watcher in self.watchers)


async def _send(response: web.StreamResponse, event: dict[str, Any]) -> None:
    await response.write(json.dumps(event).encode() + b"\n")


def _status(code: int, reason: str, message: str) -> web.Response:
    return web.json_response(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": code,
        },
        status=code,
    )
