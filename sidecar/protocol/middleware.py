"""Request handling around the endpoints: ids, the one log line, metrics, errors, HMAC.

``observe`` is the only place an exception becomes a response (the error table is the
exception tree in ``sidecar.errors``). ``authenticate`` reads the body once, within the size
limit, and verifies the signature before any handler runs.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from sidecar.auth.clients import Client, Verifier
from sidecar.config.live import LiveConfig
from sidecar.config.runtime import Runtime
from sidecar.errors import (
    AuthFailed,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    SidecarError,
)
from sidecar.observability import context
from sidecar.observability.inflight import InFlight
from sidecar.observability.logging import ACCESS_LOGGER
from sidecar.observability.metrics import Metrics
from sidecar.protocol.json import error_response

REQUEST_ID = "X-Request-Id"
BODY = web.RequestKey("body", bytes)
CLIENT = web.RequestKey("client", Client)
RUNTIME = web.RequestKey("runtime", Runtime)

_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")

log = logging.getLogger(__name__)
access = logging.getLogger(ACCESS_LOGGER)


def observe(metrics: Metrics, in_flight: InFlight) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        given = request.headers.get(REQUEST_ID, "")
        request_id = given if _ID.fullmatch(given) else uuid.uuid4().hex
        facts = context.begin(request_id)
        started = time.perf_counter()
        error: SidecarError | None = None
        in_flight.enter()
        try:
            response = await handler(request)
        except SidecarError as err:
            error = err
        except web.HTTPException as err:
            error = _from_http(err, request)
        except Exception:
            log.exception("unhandled error", extra={"fields": {"request_id": request_id}})
            error = SidecarError(
                f"An internal error occurred; it was logged with request id {request_id}.",
                details={"requestId": request_id},
            )
        finally:
            in_flight.leave()
        if error is not None:
            response = error_response(error)
        response.headers[REQUEST_ID] = request_id
        elapsed = time.perf_counter() - started
        endpoint = _endpoint(request)
        metrics.requests.labels(endpoint, request.method, str(response.status)).inc()
        metrics.latency.labels(endpoint).observe(elapsed)
        access.info(
            "%s %s %d",
            request.method,
            request.path,
            response.status,
            extra={
                "fields": {
                    "request_id": request_id,
                    "client": facts.client,
                    "remote": request.remote,
                    "method": request.method,
                    "path": request.path,
                    "status": response.status,
                    "code": error.code if error else None,
                    "duration_ms": round(elapsed * 1000, 3),
                    "fqdn": facts.fqdn,
                    "account": facts.account,
                    "provider_calls": facts.provider_calls,
                }
            },
        )
        return response

    return middleware


def authenticate(
    verifier: Verifier, live: LiveConfig, metrics: Metrics, max_body: int
) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        unmatched = request.match_info.http_exception
        if unmatched is not None:
            raise unmatched
        body = await _read_body(request, max_body)
        request[BODY] = body
        with live.use() as runtime:  # the request finishes on the table it started with
            request[RUNTIME] = runtime
            try:
                client = await verifier.verify(
                    runtime.clients, request.method, request.path, request.headers, body
                )
            except AuthFailed as err:
                metrics.auth_failures.labels(err.reason).inc()
                raise
            if client is not None:
                request[CLIENT] = client
                facts = context.current()
                if facts is not None:
                    facts.client = client.name
            return await handler(request)

    return middleware


async def _read_body(request: web.Request, limit: int) -> bytes:
    """The whole body; the app's ``client_max_size`` (= ``limit``) stops an oversized one."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise _too_large(limit)
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise _too_large(limit) from None


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The request body is larger than the {limit} bytes allowed.", details={"limit": limit}
    )


def _from_http(err: web.HTTPException, request: web.Request) -> SidecarError:
    if isinstance(err, web.HTTPMethodNotAllowed):
        return MethodNotAllowed(
            f"{request.method} is not allowed on {request.path}.", allowed=err.allowed_methods
        )
    if err.status == 404:
        return NotFound(f"There is no endpoint at {request.path}.", details={"path": request.path})
    if err.status == 413:
        return PayloadTooLarge("The request body is too large.")
    if 400 <= err.status < 500:
        return InvalidRequest(f"The request is malformed: {err.reason}.")
    return SidecarError(f"The request failed: {err.reason}.")


def _endpoint(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"
