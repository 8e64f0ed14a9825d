"""The Cloudflare API emulator over HTTP: envelope, auth, faults and request counts.

Serves ``/client/v4/...`` like Cloudflare, plus ``/__emulator/...`` for tests and developers:
``GET /__emulator/stats`` (requests per endpoint), ``DELETE /__emulator/stats`` (reset),
``POST /__emulator/faults`` (``{"status": 429, "retryAfter": 5, "times": 1}``,
``{"status": 503}``, ``{"status": 404, "code": 81044, "path": "batch"}``,
``{"latency": 0.05}``), ``DELETE /__emulator/faults``,
``POST /__emulator/zones`` (``{"name": "example.com"}``), ``GET /__emulator/zones``, and
``GET /__emulator/history?since=SEQ`` (every state each record set passed through: ``history``).
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from sidecar.emulator.errors import CloudflareError
from sidecar.emulator.payloads import ApiEnvelope, PageInfo
from sidecar.emulator.query import matches, paginate
from sidecar.emulator.state import State, Zone

API = "/client/v4"
CONTROL = "/__emulator"


@dataclass(frozen=True)
class Principal:
    """Who is calling; ``zones`` limits a zone-scoped token (``None``: every zone)."""

    name: str
    zones: frozenset[str] | None = None
    can_list_zones: bool = True

    def sees(self, zone: Zone) -> bool:
        return self.zones is None or zone.name in self.zones


# who calls, for the handlers of the request being served: each request runs in its own task, so
# a context variable is per request (and needs nothing of aiohttp newer than the floor)
_principal: ContextVar[Principal] = ContextVar("principal")


@dataclass
class Fault:
    status: int | None = None  # None: a delay only, then the request is served
    retry_after: int = 1
    times: int | None = 1  # None: until cleared
    path: str = ""  # only requests whose path contains this
    latency: float = 0.0  # seconds before failing, or before answering once served
    code: int | str | None = None  # the error code in the body (None: Cloudflare's usual one)
    message: str = ""  # the error message in the body (empty: a generic one)


@dataclass
class Emulator:
    """A stateful Cloudflare v4 API subset; build ``app()`` and serve it on loopback."""

    state: State = field(default_factory=State)
    tokens: dict[str, Principal] = field(default_factory=dict)
    keys: dict[tuple[str, str], Principal] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    latency: float = 0.0
    stats: Counter[str] = field(default_factory=Counter)
    # The largest page served, whatever ``per_page`` asks (Cloudflare's: 5 000 000 DNS records,
    # 50 zones). Tests lower it to meet pagination; ``result_info`` echoes the size served.
    records_per_page: int = 5_000_000
    zones_per_page: int = 50

    def add_token(
        self, token: str, *, zones: list[str] | None = None, can_list_zones: bool = True
    ) -> None:
        scope = frozenset(z.lower().rstrip(".") for z in zones) if zones is not None else None
        self.tokens[token] = Principal(f"token:{token[:4]}", scope, can_list_zones)

    def add_key(self, email: str, key: str) -> None:
        self.keys[(email.lower(), key)] = Principal(f"key:{email}")

    def fail(
        self,
        status: int,
        *,
        times: int | None = 1,
        retry_after: int = 1,
        path: str = "",
        code: int | str | None = None,
        message: str = "",
    ) -> None:
        """Answer matching requests ``status`` with error ``code`` (default: Cloudflare's for
        that status) instead of serving them."""
        self.faults.append(Fault(status, retry_after, times, path, code=code, message=message))

    def delay(self, seconds: float, *, times: int | None = 1, path: str = "") -> None:
        """Serve matching requests, then answer ``seconds`` late: the work is done even when
        the caller has given up waiting (a batch that "timed out" may be applied)."""
        self.faults.append(Fault(None, times=times, path=path, latency=seconds))

    def writes(self) -> int:
        return sum(n for key, n in self.stats.items() if not key.startswith("GET "))

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._envelope])
        app.add_routes(
            [
                web.get(f"{API}/user/tokens/verify", self._verify),
                web.get(f"{API}/zones", self._zones),
                web.get(f"{API}/zones/{{zone_id}}", self._zone),
                web.get(f"{API}/zones/{{zone_id}}/dns_records", self._list),
                web.post(f"{API}/zones/{{zone_id}}/dns_records", self._create),
                web.post(f"{API}/zones/{{zone_id}}/dns_records/batch", self._batch),
                web.get(f"{API}/zones/{{zone_id}}/dns_records/{{record_id}}", self._get),
                web.put(f"{API}/zones/{{zone_id}}/dns_records/{{record_id}}", self._put),
                web.patch(f"{API}/zones/{{zone_id}}/dns_records/{{record_id}}", self._patch),
                web.delete(f"{API}/zones/{{zone_id}}/dns_records/{{record_id}}", self._delete),
                web.get(f"{CONTROL}/stats", self._get_stats),
                web.delete(f"{CONTROL}/stats", self._reset_stats),
                web.post(f"{CONTROL}/faults", self._add_fault),
                web.delete(f"{CONTROL}/faults", self._clear_faults),
                web.get(f"{CONTROL}/zones", self._list_zones),
                web.post(f"{CONTROL}/zones", self._add_zone),
                web.get(f"{CONTROL}/history", self._history),
            ]
        )
        return app

    # --- middleware ---------------------------------------------------------------------

    @web.middleware
    async def _envelope(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(CONTROL):
            return await handler(request)
        resource = request.match_info.route.resource
        template = resource.canonical.removeprefix(API) if resource else request.path
        self.stats[f"{request.method} {template}"] += 1
        if self.latency:
            await asyncio.sleep(self.latency)  # simulated network latency, by request
        fault = self._take_fault(request.path)
        if fault is not None and fault.status is not None:
            await asyncio.sleep(fault.latency)
            return _fault_response(fault)
        response = await self._serve(request, handler)
        if fault is not None:  # a late answer: the work is done, the caller may have gone
            await asyncio.sleep(fault.latency)
        return response

    async def _serve(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            _principal.set(self._authenticate(request))
            if request.match_info.http_exception is not None:
                raise request.match_info.http_exception
            return await handler(request)
        except CloudflareError as err:
            return _error(err.status, err.code, err.message)
        except web.HTTPException as err:
            return _error(err.status, 7000 if err.status == 404 else 7001, err.reason)

    def _take_fault(self, path: str) -> Fault | None:
        for fault in self.faults:
            if fault.path in path:
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        self.faults.remove(fault)
                return fault
        return None

    def _authenticate(self, request: web.Request) -> Principal:
        auth = request.headers.get("Authorization", "")
        email, key = request.headers.get("X-Auth-Email"), request.headers.get("X-Auth-Key")
        if auth and (email or key):
            raise CloudflareError(
                400, 6003, "Invalid request headers: send a token or a key and email, not both"
            )
        if auth.startswith("Bearer "):
            principal = self.tokens.get(auth.removeprefix("Bearer ").strip())
        elif email and key:
            principal = self.keys.get((email.lower(), key))
        else:
            raise CloudflareError(
                400, 9106, "Missing X-Auth-Key, X-Auth-Email or Authorization headers"
            )
        if principal is None:
            raise CloudflareError(403, 10000, "Authentication error")
        return principal

    def _zone_for(self, request: web.Request) -> Zone:
        zone = self.state.zone(request.match_info["zone_id"])
        if not _principal.get().sees(zone):
            raise CloudflareError(403, 9109, "Unauthorized to access requested resource")
        return zone

    # --- API ------------------------------------------------------------------------------

    async def _verify(self, request: web.Request) -> web.Response:
        principal = _principal.get()
        if not principal.name.startswith("token:"):
            raise CloudflareError(400, 6003, "Invalid request headers: not a token")
        return _ok({"id": "emulated-token", "status": "active"})

    async def _zones(self, request: web.Request) -> web.Response:
        principal = _principal.get()
        if not principal.can_list_zones:
            raise CloudflareError(403, 9109, "Unauthorized to access requested resource")
        name = request.query.get("name", "").lower().rstrip(".")
        zones = [
            z.as_json()
            for z in self.state.zones.values()
            if principal.sees(z) and (not name or z.name == name)
        ]
        page, per_page = _paging(request.query, default=20, top=self.zones_per_page)
        items, info = paginate(zones, page, per_page)
        return _ok(items, info)

    async def _zone(self, request: web.Request) -> web.Response:
        return _ok(self._zone_for(request).as_json())

    async def _list(self, request: web.Request) -> web.Response:
        zone = self._zone_for(request)
        query = dict(request.query)
        if "name" in query and "name.exact" not in query:
            query["name.exact"] = query.pop("name")
        if "content" in query and "content.exact" not in query:
            query["content.exact"] = query.pop("content")
        if "comment" in query and "comment.exact" not in query:
            query["comment.exact"] = query.pop("comment")
        exact = query.get("name.exact", "").lower().rstrip(".")
        candidates = zone.named(exact) if exact else zone.records.values()
        found = [r for r in candidates if matches(r, query)]
        found.sort(key=lambda r: (r["type"], r["name"], r["content"]))
        page, per_page = _paging(request.query, default=100, top=self.records_per_page)
        items, info = paginate(found, page, per_page)
        return _ok(items, info)

    async def _create(self, request: web.Request) -> web.Response:
        return _ok(self.state.create(self._zone_for(request), await _body(request)))

    async def _batch(self, request: web.Request) -> web.Response:
        return _ok(self.state.batch(self._zone_for(request), await _body(request)))

    async def _get(self, request: web.Request) -> web.Response:
        zone = self._zone_for(request)
        return _ok(self.state.get(zone, request.match_info["record_id"]))

    async def _put(self, request: web.Request) -> web.Response:
        zone = self._zone_for(request)
        body = await _body(request)
        return _ok(self.state.update(zone, request.match_info["record_id"], body, partial=False))

    async def _patch(self, request: web.Request) -> web.Response:
        zone = self._zone_for(request)
        body = await _body(request)
        return _ok(self.state.update(zone, request.match_info["record_id"], body, partial=True))

    async def _delete(self, request: web.Request) -> web.Response:
        zone = self._zone_for(request)
        return _ok(self.state.delete(zone, request.match_info["record_id"]))

    # --- control --------------------------------------------------------------------------

    async def _get_stats(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "requests": dict(self.stats),
                "total": sum(self.stats.values()),
                "writes": self.writes(),
            }
        )

    async def _reset_stats(self, request: web.Request) -> web.Response:
        self.stats.clear()
        return web.json_response({"requests": {}, "total": 0, "writes": 0})

    async def _add_fault(self, request: web.Request) -> web.Response:
        spec = await request.json()
        if "latency" in spec:
            self.latency = float(spec["latency"])
        if "status" in spec:
            self.fail(
                int(spec["status"]),
                times=spec.get("times", 1),
                retry_after=int(spec.get("retryAfter", 1)),
                path=str(spec.get("path", "")),
                code=spec.get("code"),
                message=str(spec.get("message", "")),
            )
        return web.json_response({"faults": len(self.faults), "latency": self.latency})

    async def _clear_faults(self, request: web.Request) -> web.Response:
        self.faults.clear()
        self.latency = 0.0
        return web.json_response({"faults": 0, "latency": 0.0})

    async def _list_zones(self, request: web.Request) -> web.Response:
        return web.json_response([z.as_json() for z in self.state.zones.values()])

    async def _history(self, request: web.Request) -> web.Response:
        try:
            since = int(request.query.get("since", "0"))
        except ValueError:
            return web.json_response({"error": "since must be a sequence number"}, status=400)
        return web.json_response(self.state.history.page(since))

    async def _add_zone(self, request: web.Request) -> web.Response:
        spec = await request.json()
        zone = self.state.add_zone(str(spec["name"]), spec.get("id"))
        return web.json_response(zone.as_json())


def _paging(query: Mapping[str, str], *, default: int, top: int) -> tuple[int, int]:
    try:
        page = max(1, int(query.get("page", "1")))
        per_page = min(top, max(5, int(float(query.get("per_page", str(default))))))
    except ValueError:
        raise CloudflareError(400, 1004, "page and per_page must be numbers") from None
    return page, per_page


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        raise CloudflareError(400, 9207, "Request body is invalid JSON.") from None
    if not isinstance(body, dict):
        raise CloudflareError(400, 9207, "Request body must be a JSON object.")
    return body


def _ok(result: object, info: PageInfo | None = None) -> web.Response:
    body: ApiEnvelope = {"success": True, "errors": [], "messages": [], "result": result}
    if info is not None:
        body["result_info"] = info
    return web.Response(text=json.dumps(body), content_type="application/json")


def _error(status: int, code: int | str, message: str) -> web.Response:
    body: ApiEnvelope = {
        "success": False,
        "errors": [{"code": code, "message": message}],
        "messages": [],
        "result": None,
    }
    return web.Response(status=status, text=json.dumps(body), content_type="application/json")


def _fault_response(fault: Fault) -> web.Response:
    status = fault.status or 500
    if status == 429:
        response = _error(429, 971, "Please wait and consider throttling your request speed")
        response.headers["Retry-After"] = str(fault.retry_after)
        return response
    code = 10001 if fault.code is None else fault.code
    return _error(status, code, fault.message or f"Injected fault: HTTP {status}")


async def run(
    emulator: Emulator,
    host: str,
    port: int,
    stop: asyncio.Event | None = None,
    *,
    shutdown_timeout: float = 5.0,
    listening: Callable[[], None] = lambda: None,
) -> None:
    """Serve ``emulator`` until ``stop`` is set (the CLI sets it on SIGTERM / SIGINT); requests
    still in progress then (a slowed one) get ``shutdown_timeout`` seconds, then are cancelled.
    ``listening`` is called once the port is open."""
    stop = stop or asyncio.Event()
    runner = web.AppRunner(emulator.app(), access_log=None, shutdown_timeout=shutdown_timeout)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        listening()
        await stop.wait()
    finally:
        await runner.cleanup()
