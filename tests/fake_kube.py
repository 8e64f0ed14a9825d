"""A fake Kubernetes API server on loopback: Secrets and DNSClasses (list and watch by name),
and the operator's DNSRecords (namespaced custom objects: list in pages and watch across
namespaces or in one, and get by name).

Enough of the real protocol for the real ``kubernetes_asyncio`` client: lists carry a
``resourceVersion``; watches replay history after the given version and then stream new events
as JSON lines, with BOOKMARK events on demand; a compacted version gets a 410 ERROR event; a
list or watch without ``fieldSelector=metadata.name=...`` is forbidden (403), as it is for a
Role limited by ``resourceNames``. Tests can compact history, drop every watch connection, and
forbid single objects. DNSRecords are listed without a selector (the ClusterRole grants the
whole collection), may be forbidden per scope, and their events may be held back from the
watches (``hold``) to play a watch that lags behind the API server.
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
ALL = "*"  # the scope of a list or watch across all namespaces


@dataclass
class _Watcher:
    key: Key  # the object watched; for a collection ("DNSRecord", namespace or ALL, "")
    queue: asyncio.Queue[dict[str, Any] | None] = field(default_factory=asyncio.Queue)

    def sees(self, key: Key) -> bool:
        if self.key[0] == "DNSRecord":
            return key[0] == "DNSRecord" and self.key[1] in (ALL, key[1])
        return self.key == key


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
    gets: int = 0
    forbidden_scopes: set[str] = field(default_factory=set)  # DNSRecord scopes refused (403)
    held: list[tuple[Key, dict[str, Any]]] | None = None  # DNSRecord events not yet delivered
    get_failure: int | None = None  # the status every DNSRecord get answers, when set
    held_lists: dict[Key, asyncio.Event] = field(
        default_factory=dict
    )  # lists that wait for a release
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

    def set_dns_record(self, namespace: str, name: str, spec: dict[str, Any]) -> None:
        self._put(
            ("DNSRecord", namespace, name),
            {
                "apiVersion": f"{GROUP}/v1alpha1",
                "kind": "DNSRecord",
                "spec": spec,
                "status": {"state": "Created", "conditions": [{"type": "Ready"}]},
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "finalizers": [f"{GROUP}/finalizer"],
                    "managedFields": [{"manager": "kubectl", "operation": "Update"}],
                },
            },
        )

    def hold(self) -> None:
        """From now on, DNSRecord events reach the API (get, list) but not the watches."""
        self.held = []

    def release(self) -> None:
        """Deliver the DNSRecord events held back, in order, and stop holding."""
        held, self.held = self.held or [], None
        for key, event in held:
            self._deliver(key, event)

    def delete(self, kind: str, namespace: str, name: str) -> None:
        key = (kind, namespace, name)
        obj = self.objects.pop(key)
        self._event("DELETED", key, obj)

    def hold_list(self, kind: str, namespace: str, name: str) -> asyncio.Event:
        """Make the lists of one object wait until the returned event is set (a slow API server);
        ``waiting`` shows when one has arrived."""
        return self.held_lists.setdefault((kind, namespace, name), asyncio.Event())

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
                        "apiVersion": "v1",
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
        copy = json.loads(json.dumps(obj))
        self.history.append((self.version, kind, key, copy))
        if self.held is not None and key[0] == "DNSRecord":
            self.held.append((key, {"type": kind, "object": copy}))
            return
        self._deliver(key, {"type": kind, "object": copy})

    def _deliver(self, key: Key, event: dict[str, Any]) -> None:
        for watcher in self.watchers:
            if watcher.sees(key):
                watcher.queue.put_nowait(event)

    # --- the API -----------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        app.add_routes(
            [
                web.get("/api/v1/namespaces/{namespace}/secrets", self._secrets),
                web.get(f"/apis/{GROUP}/v1alpha1/dnsclasses", self._dns_classes),
                web.get(f"/apis/{GROUP}/v1alpha1/dnsrecords", self._dns_records),
                web.get(
                    f"/apis/{GROUP}/v1alpha1/namespaces/{{namespace}}/dnsrecords",
                    self._dns_records,
                ),
                web.get(
                    f"/apis/{GROUP}/v1alpha1/namespaces/{{namespace}}/dnsrecords/{{name}}",
                    self._dns_record,
                ),
            ]
        )
        return app

    async def _secrets(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, "Secret", request.match_info["namespace"])

    async def _dns_classes(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, "DNSClass", "")

    async def _dns_records(self, request: web.Request) -> web.StreamResponse:
        scope = request.match_info.get("namespace", ALL)
        if scope in self.forbidden_scopes:
            where = "at the cluster scope" if scope == ALL else f'in the namespace "{scope}"'
            return _status(
                403,
                "Forbidden",
                'dnsrecords.dns.homelab.mortenolsen.pro is forbidden: User "system:serviceaccount:'
                f'dns-system:dns-sidecar" cannot list resource "dnsrecords" {where}',
            )
        if request.query.get("watch") in ("true", "1", "True"):
            return await self._watch(request, ("DNSRecord", scope, ""))
        self.lists += 1
        found = sorted(
            (key, obj)
            for key, obj in self.objects.items()
            if key[0] == "DNSRecord" and scope in (ALL, key[1])
        )
        start = int(request.query.get("continue") or 0)
        limit = int(request.query.get("limit") or 0) or len(found) or 1
        page = [obj for _, obj in found[start : start + limit]]
        metadata: dict[str, Any] = {"resourceVersion": str(self.version)}
        if start + limit < len(found):
            metadata["continue"] = str(start + limit)
        return web.json_response(
            {"kind": "DNSRecordList", "apiVersion": f"{GROUP}/v1alpha1", "metadata": metadata}
            | {"items": page}
        )

    async def _dns_record(self, request: web.Request) -> web.StreamResponse:
        self.gets += 1
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        if namespace in self.forbidden_scopes:
            return _status(403, "Forbidden", f'dnsrecords "{name}" is forbidden')
        if self.get_failure is not None:
            return _status(self.get_failure, "InternalError", "etcdserver: request timed out")
        found = self.objects.get(("DNSRecord", namespace, name))
        if found is None:
            return _status(404, "NotFound", f'dnsrecords "{name}" not found')
        return web.json_response(found)

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
        if key in self.held_lists:
            self.waiting.add(key)
            await self.held_lists[key].wait()
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
        held = {id(event["object"]) for _, event in self.held or []}
        for version, kind, event_key, obj in self.history:
            if version > since and watcher.sees(event_key) and id(obj) not in held:
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
