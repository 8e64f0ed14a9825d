"""The request path on the protocol port, in named steps, run by the app's one route.

    name the request -> match the endpoint -> read the body -> pin the routing table
    -> verify the signature -> the endpoint's handler -> map an error to its answer
    -> record the outcome (metrics, the access line)

``map_error`` is the only place an exception becomes a response (the error table is the
exception tree in ``sidecar.errors``). The body is read once, within the size limit, and the
signature verified before any handler runs.

No aiohttp application layer: no middleware (with any, aiohttp adds one of its own, and each
layer costs a partial and a coroutine per request), no router (it tries every prefix of the
path). The protocol port's server hands every request to ``request_path``'s ``serve``;
``match_endpoint`` finds the endpoint in the protocol's own table
(``sidecar.protocol.endpoints``), and an unknown path or method is answered here, as JSON, like
any other error.
"""

from __future__ import annotations

import logging
import re
import time

from aiohttp import hdrs, web
from multidict import istr

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
from sidecar.observability.access import AccessLog
from sidecar.observability.context import RequestFacts, RequestIds
from sidecar.observability.inflight import InFlight
from sidecar.observability.metrics import Metrics
from sidecar.protocol.call import Call, Handler, PathParams
from sidecar.protocol.endpoints import Endpoints, Serve
from sidecar.protocol.json import error_response

REQUEST_ID = istr("X-Request-Id")  # istr: looked up without lower-casing it each time
UNMATCHED = "unmatched"  # the endpoint label (metrics) of an unknown path or method
METHODS = hdrs.METH_ALL  # the method labels of the metrics (any other: "other")

_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")

log = logging.getLogger(__name__)


def request_path(
    *,
    endpoints: Endpoints,
    verifier: Verifier,
    live: LiveConfig,
    metrics: Metrics,
    in_flight: InFlight,
    access: AccessLog,
    max_body: int,
) -> Serve:
    """Every step of a protocol request around its endpoint's handler."""
    ids = RequestIds()

    async def serve(request: web.BaseRequest) -> web.StreamResponse:
        request_id = name_request(request, ids)
        facts = context.begin(request_id)
        started = time.perf_counter()
        error: SidecarError | None = None
        runtime: Runtime | None = None
        label = UNMATCHED
        in_flight.enter()
        try:
            label, handler, params = match_endpoint(request, endpoints)
            body = await read_body(request, max_body)
            runtime = pin_routing_table(live)
            client = await verify_signature(
                request, verifier, runtime, body, metrics=metrics, facts=facts
            )
            response = await handler(Call(request, runtime, body, params, client, facts))
        except Exception as err:  # noqa: BLE001 - every error becomes an answer, here alone
            error = map_error(err, request, request_id)
            response = error_response(error)
        finally:
            if runtime is not None:
                live.release(runtime)
            in_flight.leave()
        elapsed = time.perf_counter() - started
        record_outcome(
            request, response, facts, error, elapsed, endpoint=label, metrics=metrics, access=access
        )
        return response

    return serve


def name_request(request: web.BaseRequest, ids: RequestIds) -> str:
    """The caller's ``X-Request-Id`` when it is a sensible one, else a new id."""
    given = request.headers.get(REQUEST_ID)
    return given if given is not None and _ID.fullmatch(given) else ids.next()


def match_endpoint(
    request: web.BaseRequest, endpoints: Endpoints
) -> tuple[str, Handler, PathParams]:
    """The endpoint's label, handler and path parameters; no endpoint at the path, or not for
    the method: answered before the body is read."""
    found = endpoints.match(request.rel_url.path_safe)
    if found is None:
        raise NotFound(f"There is no endpoint at {request.path}.", details={"path": request.path})
    endpoint, params = found
    handler = endpoint.handlers.get(request.method)
    if handler is None:
        raise MethodNotAllowed(
            f"{request.method} is not allowed on {request.path}.", allowed=endpoint.handlers
        )
    return endpoint.label, handler, params


async def read_body(request: web.BaseRequest, limit: int) -> bytes:
    """The whole body; the request's ``client_max_size`` (= ``limit``) stops an oversized one.
    A client that waits for ``100 Continue`` before sending the body gets it once the declared
    size is known to fit (other expectations are ignored, as RFC 9110 allows)."""
    if not request.body_exists:  # no Content-Length, no chunks: nothing to wait for
        return b""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise _too_large(limit)
    expect = request.headers.get(hdrs.EXPECT)
    if expect is not None and expect.lower() == "100-continue" and request.version >= (1, 1):
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0  # the answer itself is still to come
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise _too_large(limit) from None
    except web.RequestPayloadError as err:  # e.g. a Content-Encoding the body is not in
        reason = str(err.__cause__ or err).strip().rstrip(".")[:200]
        raise InvalidRequest(f"The request body cannot be read: {reason}.") from None
    except ConnectionResetError:  # nobody is left to answer; the access line says what it was
        raise InvalidRequest("The connection closed before the whole body arrived.") from None


def pin_routing_table(live: LiveConfig) -> Runtime:
    """The routing table (and clients) this request uses to the end, whatever reloads happen
    meanwhile; the caller releases it when the request is answered."""
    return live.pin()


async def verify_signature(
    request: web.BaseRequest,
    verifier: Verifier,
    runtime: Runtime,
    body: bytes,
    *,
    metrics: Metrics,
    facts: RequestFacts,
) -> Client | None:
    """Which client signed the request (its HMAC headers), or ``AuthFailed``; ``None`` when no
    client is configured and unsigned requests may pass."""
    try:
        client = await verifier.verify(
            runtime.clients, request.method, request.path, request.headers, body
        )
    except AuthFailed as err:
        metrics.auth_failures.labels(err.reason).inc()
        raise
    if client is not None:
        facts.client = client.name
    return client


def map_error(err: Exception, request: web.BaseRequest, request_id: str) -> SidecarError:
    """The protocol error an exception answers as; an unexpected one is logged (a bug)."""
    if isinstance(err, SidecarError):
        return err
    if isinstance(err, web.HTTPException):
        return _from_http(err)
    log.error("unhandled error", exc_info=err, extra={"fields": {"request_id": request_id}})
    return SidecarError(
        f"An internal error occurred; it was logged with request id {request_id}.",
        details={"requestId": request_id},
    )


def record_outcome(
    request: web.BaseRequest,
    response: web.StreamResponse,
    facts: RequestFacts,
    error: SidecarError | None,
    elapsed: float,
    *,
    endpoint: str,
    metrics: Metrics,
    access: AccessLog,
) -> None:
    """The request id on the answer, the request metrics, and the one access-log line."""
    response.headers[REQUEST_ID] = facts.request_id
    method, path, status = request.method, request.path, response.status
    # any token is a method to HTTP: the metric's label keeps to the standard ones, so that
    # made-up methods cannot grow the number of series without bound
    metrics.count_request(endpoint, method if method in METHODS else "other", status, elapsed)
    access.request(
        facts,
        remote=request.remote,
        method=method,
        path=path,
        status=status,
        code=error.code if error else None,
        duration_ms=round(elapsed * 1000, 3),
    )


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The request body is larger than the {limit} bytes allowed.", details={"limit": limit}
    )


def _from_http(err: web.HTTPException) -> SidecarError:
    if err.status == 413:
        return PayloadTooLarge("The request body is too large.")
    if 400 <= err.status < 500:
        return InvalidRequest(f"The request is malformed: {err.reason}.")
    return SidecarError(f"The request failed: {err.reason}.")
