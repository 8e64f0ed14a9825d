"""Holding connections on the protocol port: how many, for how long, and what a broken one gets.

The protocol port is open to whoever can reach it, so each connection is held on terms:

- Its request head must arrive within ``read_timeout`` of the connection opening (or of the first
  byte of a later request on a kept-alive connection), and its body within ``read_timeout`` of the
  head. A slow head is closed without an answer; a slow body is answered 400 and closed.
- At most ``limit`` connections are open (by default below the file-descriptor limit). At the
  limit, a new connection takes the place of the connection waiting longest for a request head
  (slow or idle: nothing is lost by closing it); when every connection is busy with a request,
  no more are accepted until one ends, and new ones wait in the kernel's backlog. One warning a
  minute says so, never one per connection.
- A request the HTTP parser rejects (oversized or too many headers, conflicting lengths, bad
  bytes) is answered with the protocol's JSON error, logged as one warning line and counted.

:class:`Listener` owns the listening socket and its accept loop; :class:`GuardedHandler` is
aiohttp's per-connection protocol with these terms added. aiohttp has no hook for either, so the
handler reads three of ``RequestHandler``'s attributes (``_request_count``, ``_messages``,
``_lingering_time``); aiohttp is pinned in ``constraints.txt`` and ``tests/test_connections.py``
exercises each.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import logging
import math
import resource
import socket
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http_exceptions import DecompressSizeError, HttpProcessingError, LineTooLong
from aiohttp.http_parser import RawRequestMessage
from aiohttp.streams import StreamReader

from sidecar.errors import HeadersTooLarge, InvalidRequest, PayloadTooLarge, SidecarError
from sidecar.observability.metrics import Metrics
from sidecar.protocol.endpoints import Serve
from sidecar.protocol.json import error_response
from sidecar.tasks import Tasks

if TYPE_CHECKING:
    from sidecar.protocol.handshakes import Handshakes

log = logging.getLogger(__name__)

WARN_EVERY = 60.0  # seconds between two warnings about the same condition
_OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
# accept(2) reports a queued connection's own network error; it says to treat them like EAGAIN
_PENDING_CONNECTION_ERRORS = frozenset(
    {
        errno.ECONNABORTED,
        errno.EPROTO,
        errno.ENETDOWN,
        errno.ENOPROTOOPT,
        errno.EHOSTDOWN,
        errno.ENONET,
        errno.EHOSTUNREACH,
        errno.EOPNOTSUPP,
        errno.ENETUNREACH,
    }
)
_RESERVED_FDS = 64  # for the management port, provider connections, files and watches


def default_limit(soft_fd_limit: int | None = None) -> int:
    """A connection cap safely below the process's file-descriptor limit (``RLIMIT_NOFILE``)."""
    if soft_fd_limit is None:
        soft_fd_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft_fd_limit == resource.RLIM_INFINITY or soft_fd_limit > 1 << 20:
        soft_fd_limit = 1 << 20
    return max(16, soft_fd_limit - max(_RESERVED_FDS, soft_fd_limit // 8))


class RateLimitedWarning:
    """Log a condition at most once per ``every`` seconds, with how often it happened since."""

    def __init__(
        self, message: str, every: float = WARN_EVERY, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.message = message
        self.every = every
        self.clock = clock
        self._next = -math.inf
        self._suppressed = 0

    def __call__(self, *args: object) -> None:
        now = self.clock()
        if now < self._next:
            self._suppressed += 1
            return
        if self._suppressed:
            log.warning(self.message + " (%d more since the last warning)", *args, self._suppressed)
        else:
            log.warning(self.message, *args)
        self._next = now + self.every
        self._suppressed = 0


class Held(Protocol):
    """A connection the guard counts: a handler, or a TLS handshake still running."""

    def force_close(self) -> None: ...


class Guard:
    """The connections of one port: the count, the cap, and who waits longest for a head."""

    def __init__(self, limit: int, read_timeout: float, metrics: Metrics) -> None:
        self.limit = limit
        self.read_timeout = read_timeout
        self.metrics = metrics
        self.open: set[Held] = set()
        self.waiting: dict[Held, None] = {}  # waiting for a head, oldest first
        self.room = asyncio.Event()
        self.room.set()
        self.full = RateLimitedWarning(
            "connection limit of %d reached: idle connections are closed first, "
            "new connections wait while every connection is busy"
        )

    def opened(self, handler: Held) -> None:
        self.open.add(handler)
        self.waiting[handler] = None
        self._update()

    def closed(self, handler: Held) -> None:
        self.open.discard(handler)
        self.waiting.pop(handler, None)
        self._update()

    def busy(self, handler: Held, *, busy: bool) -> None:
        if busy:
            self.waiting.pop(handler, None)
        elif handler in self.open:
            self.waiting[handler] = None
        if len(self.open) >= self.limit:  # below the cap there is room whoever is busy
            self._update()

    def make_room(self) -> None:
        """At the cap, close the connection that has waited longest for a request head."""
        if len(self.open) < self.limit or not self.waiting:
            return
        self.full(self.limit)
        oldest = next(iter(self.waiting))
        self.waiting.pop(oldest)
        self.metrics.connections_closed.labels("limit").inc()
        oldest.force_close()

    def close_waiting(self) -> None:
        """At shutdown: close every connection that is not in the middle of a request."""
        for handler in list(self.waiting):
            handler.force_close()
        self.waiting.clear()

    def _update(self) -> None:
        if len(self.open) < self.limit or self.waiting:
            self.room.set()
        else:
            self.room.clear()


class GuardedHandler(web.RequestHandler):
    """aiohttp's connection protocol, with read deadlines, the guard's count and JSON errors."""

    def __init__(self, manager: web.Server, guard: Guard, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self.guard = guard
        self._due: float | None = None  # when the head or body must be in (loop time)
        self._on_due: Callable[[], None] = self._head_too_slow
        self._deadline: asyncio.TimerHandle | None = None  # fires at or before ``_due``
        self._body: StreamReader | None = None  # the body being received, while it is
        self._handling = False  # from a request's head to its response

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.guard.opened(self)
        self._arm(self._head_too_slow)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm()
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self.guard.closed(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        heads = self._request_count
        super().data_received(data)
        if self._request_count > heads:  # a head arrived: the body's turn
            self._disarm()
            self._handling = True
            self.guard.busy(self, busy=True)
            body = self._messages[-1][1] if self._messages else None
            if body is not None and not body.is_eof():
                self._body = body
                self._arm(self._body_too_slow)
        elif self._body is not None and self._body.is_eof():
            self._body = None
            self._disarm()
        elif data and not self._handling and self._due is None:
            # the first bytes of a request on a kept-alive connection, its head not complete
            # (a head that arrives whole within these bytes needs no deadline)
            self._arm(self._head_too_slow)

    async def finish_response(
        self, request: web.BaseRequest, resp: web.StreamResponse, start_time: float | None
    ) -> tuple[web.StreamResponse, bool]:
        answered = await super().finish_response(request, resp, start_time)
        if not self._messages:
            self._handling = False
            self._body = None
            self._disarm()
            self.guard.busy(self, busy=False)  # idle until the next request
        return answered

    def _arm(self, callback: Callable[[], None]) -> None:
        """``callback`` at ``read_timeout`` from now, unless disarmed first. One timer per
        connection, moved on only when it fires: arming and disarming on every request is then
        a clock reading, not a timer scheduled and cancelled."""
        self._due = self._loop.time() + self.guard.read_timeout
        self._on_due = callback
        if self._deadline is None:
            self._deadline = self._loop.call_at(self._due, self._deadline_reached)

    def _disarm(self) -> None:
        self._due = None  # a timer still scheduled finds nothing due

    def _deadline_reached(self) -> None:
        self._deadline = None
        due = self._due
        if due is None:
            return
        if due > self._loop.time():  # re-armed since the timer was set: wait for the new one
            self._deadline = self._loop.call_at(due, self._deadline_reached)
            return
        self._due = None
        self._on_due()

    def _head_too_slow(self) -> None:
        self.guard.metrics.connections_closed.labels("slow_head").inc()
        self.force_close()

    def _body_too_slow(self) -> None:
        body, self._body = self._body, None
        if body is None or body.is_eof():
            return
        self.guard.metrics.connections_closed.labels("slow_body").inc()
        self._lingering_time = 0.0  # answer, then close: no more waiting for the rest
        seconds = f"{self.guard.read_timeout:g}"
        body.set_exception(
            InvalidRequest(
                f"The request body did not arrive within {seconds} s.",
                details={"readTimeout": self.guard.read_timeout},
            )
        )

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """The parser's errors (and aiohttp's own last resort) as the protocol's JSON errors."""
        if request.writer.output_size > 0:
            raise ConnectionError("a response was sent already")
        request_id = uuid.uuid4().hex
        error = parse_error(exc) if isinstance(exc, HttpProcessingError) else None
        if error is None:
            self.logger.error(
                "error handling request from %s (request id %s)",
                request.remote,
                request_id,
                exc_info=exc,
            )
            error = SidecarError(
                f"An internal error occurred; it was logged with request id {request_id}.",
                details={"requestId": request_id},
            )
        else:
            log.warning(
                "malformed HTTP request from %s: %s",
                request.remote,
                error.message,
                extra={"fields": {"request_id": request_id, "status": error.status}},
            )
            self.guard.metrics.http_errors.labels(str(error.status)).inc()
        response = error_response(error)
        response.headers["X-Request-Id"] = request_id
        response.force_close()
        return response


def parse_error(exc: HttpProcessingError) -> SidecarError:
    """What the caller is told about a request the HTTP parser rejected."""
    if isinstance(exc, LineTooLong):
        limit = exc.args[1] if len(exc.args) > 1 else "the allowed number of"
        return HeadersTooLarge(f"The request head has a line longer than {limit} bytes.")
    first = (exc.message or type(exc).__name__).strip().splitlines()[0]
    reason = first.rstrip(" .:")[:200]
    if "Too many headers" in reason:
        return HeadersTooLarge(f"The request head is too large: {reason}.")
    if isinstance(exc, DecompressSizeError):
        return PayloadTooLarge(f"The request body is too large: {reason}.")
    return InvalidRequest(f"The request is not valid HTTP: {reason}.")


class Listener:
    """Accepts connections on one TCP address within ``guard``'s terms, and hands every request
    to ``serve`` (aiohttp's low-level server: no router, no application layer, no middleware;
    the request path matches the protocol's endpoints itself)."""

    def __init__(
        self,
        serve: Serve,
        guard: Guard,
        *,
        max_body: int,
        backlog: int = 128,
        tls: Handshakes | None = None,
        **handler_args: Any,
    ) -> None:
        loop = asyncio.get_running_loop()

        def request(
            message: RawRequestMessage,
            payload: StreamReader,
            protocol: web.RequestHandler,
            writer: AbstractStreamWriter,
            task: asyncio.Task[None],
        ) -> web.BaseRequest:
            return web.BaseRequest(
                message, payload, protocol, writer, task, loop, client_max_size=max_body
            )

        self.server = web.Server(serve, request_factory=request, loop=loop)
        self.guard = guard
        self.handler_args = {"loop": loop, **handler_args}
        self.socket: socket.socket | None = None
        self.backlog = backlog  # the kernel's queue; also the most accepted in one turn
        self.tls = tls  # HTTPS: each connection's handshake runs on its own (protocol.handshakes)
        self._tasks = Tasks("protocol")  # the accept loop: supervised, restarted if it fails
        self._exhausted = RateLimitedWarning(
            "cannot accept a connection: %s; retrying (lower DNS_SIDECAR_MAX_CONNECTIONS "
            "or raise the file-descriptor limit)"
        )

    async def start(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        family, _, _, _, address = (
            await loop.getaddrinfo(
                host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )
        )[0]
        listening = socket.create_server(address[:2], family=family, backlog=self.backlog)
        listening.setblocking(False)  # noqa: FBT003 - the socket API
        self.socket = listening
        self._tasks.loop("accept", functools.partial(self._accept_forever, listening))

    async def stop(self) -> None:
        """Stop accepting; the connections already open are left to the drain."""
        await self._tasks.aclose()
        if self.socket is not None:
            self.socket.close()

    async def close(self, grace: float) -> None:
        """Close every connection: idle ones at once, the others once their request is answered
        or, after ``grace`` seconds, cancelled."""
        await self.stop()
        self.server.pre_shutdown()
        await self.server.shutdown(grace)

    def _handler(self) -> GuardedHandler:
        return GuardedHandler(self.server, self.guard, **self.handler_args)

    async def _accept_forever(self, listening: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._room()
            try:
                conn, _ = await loop.sock_accept(listening)
            except OSError as err:
                if err.errno in _PENDING_CONNECTION_ERRORS:
                    continue  # that connection is gone; the next one is not
                if err.errno not in _OUT_OF_RESOURCES:
                    raise
                self._exhausted(err.strerror or err)
                await asyncio.sleep(0.1)  # a backoff: descriptors free up as connections end
                continue
            try:
                await self._room()  # connections may have turned busy while this was accepted
            except asyncio.CancelledError:
                conn.close()
                raise
            self.guard.make_room()
            # the rest of a burst in the same turn, as asyncio's own servers accept: one at a
            # time, the last of 64 connections opened at once waits for 63 turns of the loop
            accepted = [conn, *self._backlog(listening)]
            if self.tls is not None:  # HTTPS: not waiting here for any handshake to finish
                for conn in accepted:
                    self.tls.start(conn, self._handler, self._tasks)
                continue
            set_up = (loop.connect_accepted_socket(self._handler, conn) for conn in accepted)
            done = await asyncio.gather(*set_up, return_exceptions=True)  # one failing: not all
            for conn, failed in zip(accepted, done, strict=True):
                conn.close() if isinstance(failed, Exception) else None

    def _backlog(self, listening: socket.socket) -> list[socket.socket]:
        """The connections already waiting in the kernel's queue, as many as there is room
        for below the cap (at the cap, one at a time through :meth:`Guard.make_room`)."""
        accepted: list[socket.socket] = []
        room = min(self.backlog, self.guard.limit - len(self.guard.open) - 1)
        while len(accepted) < room:
            try:
                conn, _ = listening.accept()
            except (BlockingIOError, InterruptedError):
                break
            except OSError as err:
                # the burst ends here, keeping what was accepted: a pending connection's own
                # error skips it, running out of descriptors is said (and waited out by the
                # accept loop), anything else the loop's next accept meets again
                if err.errno in _OUT_OF_RESOURCES:
                    self._exhausted(err.strerror or err)
                break
            conn.setblocking(False)  # noqa: FBT003 - the socket API
            accepted.append(conn)
        return accepted

    async def _room(self) -> None:
        if not self.guard.room.is_set():
            self.guard.full(self.guard.limit)
            await self.guard.room.wait()
