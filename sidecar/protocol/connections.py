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
aiohttp's per-connection protocol (``web.RequestHandler``) with these terms added through its
public methods only (the asyncio protocol callbacks, ``finish_response`` and ``handle_error``):
no private attribute of aiohttp's is read or set. A request head is known to be complete when
aiohttp asks the listener's request factory for the request (``web.Server``'s public
``request_factory``); :class:`Terms` holds one connection's deadline and state.
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
from collections.abc import Callable, Mapping
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

# aiohttp's request factory: the parsed head, the body's stream, the connection, the response's
# writer, the connection's task
RequestFactory = Callable[
    [
        RawRequestMessage,
        StreamReader,
        web.RequestHandler,
        AbstractStreamWriter,
        "asyncio.Task[None]",
    ],
    web.BaseRequest,
]

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


def _soft_fd_limit(given: int | None) -> int:
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0] if given is None else given
    return 1 << 20 if soft == resource.RLIM_INFINITY or soft > 1 << 20 else soft


def default_limit(soft_fd_limit: int | None = None) -> int:
    """A connection cap safely below the process's file-descriptor limit (``RLIMIT_NOFILE``)."""
    soft = _soft_fd_limit(soft_fd_limit)
    return max(16, soft - max(_RESERVED_FDS, soft // 8))


def management_limit(soft_fd_limit: int | None = None) -> int:
    """The management port's cap: a quarter of the descriptors ``default_limit`` keeps back,
    at most 32 (the kubelet's probes and Prometheus' scrapes need a few at a time), so that
    both ports together stay below the process's limit with room for everything else."""
    soft = _soft_fd_limit(soft_fd_limit)
    return max(4, min(32, (soft - default_limit(soft)) // 4))


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

    def __call__(self, *args: object, extra: Mapping[str, object] | None = None) -> None:
        now = self.clock()
        if self.every and now < self._next:
            self._suppressed += 1
            return
        if self._suppressed:
            message = self.message + " (%d more since the last warning)"
            log.warning(message, *args, self._suppressed, extra=extra)
        else:
            log.warning(self.message, *args, extra=extra)
        self._next = now + self.every
        self._suppressed = 0


class HeldConnection(Protocol):
    """A connection the guard counts: a handler, or a TLS handshake still running."""

    def force_close(self) -> None: ...


class Guard:
    """The connections of one port: the count, the cap, and who waits longest for a head.

    A request the parser refuses is one warning each on the protocol port (a caller's bug worth
    its line); on another port (``port``: its name), one a minute at most: that port is not the
    protocol, and whoever sends it garbage should not fill the log.
    """

    def __init__(
        self, limit: int, read_timeout: float, metrics: Metrics, *, port: str = "protocol"
    ) -> None:
        self.limit = limit
        self.read_timeout = read_timeout
        self.metrics = metrics
        self.open: set[HeldConnection] = set()
        self.waiting: dict[HeldConnection, None] = {}  # waiting for a head, oldest first
        self.room = asyncio.Event()
        self.room.set()
        where = "" if port == "protocol" else f" on the {port} port"
        self.full = RateLimitedWarning(
            f"connection limit of %d reached{where}: idle connections are closed first, "
            "new connections wait while every connection is busy"
        )
        self.malformed = RateLimitedWarning(
            f"malformed HTTP request{where} from %s: %s",
            every=0.0 if port == "protocol" else WARN_EVERY,
        )

    def opened(self, handler: HeldConnection) -> None:
        self.open.add(handler)
        self.waiting[handler] = None
        self._update()

    def closed(self, handler: HeldConnection) -> None:
        self.open.discard(handler)
        self.waiting.pop(handler, None)
        self._update()

    def busy(self, handler: HeldConnection, *, busy: bool) -> None:
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


class Terms:
    """One connection's terms: its read deadline, and whether it is inside a request.

    One timer per connection, moved on only when it fires: arming and disarming on every request
    is then a clock reading, not a timer scheduled and cancelled.
    """

    def __init__(self, handler: GuardedHandler, guard: Guard) -> None:
        self.handler = handler
        self.guard = guard
        self.loop = asyncio.get_running_loop()
        self.due: float | None = None  # when the head or body must be in (loop time)
        self.on_due: Callable[[], None] = self.head_too_slow
        self.timer: asyncio.TimerHandle | None = None  # fires at or before ``due``
        self.body: StreamReader | None = None  # the body being received, while it is
        self.handling = False  # from a request's head to its response
        self.close_after_answer = False  # a slow body: answered, then closed, no lingering

    def opened(self) -> None:
        self.guard.opened(self.handler)
        self.arm(self.head_too_slow)

    def closed(self) -> None:
        self.due = None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.guard.closed(self.handler)

    def received(self, data: bytes) -> None:
        """Bytes arrived (aiohttp has parsed them): a body complete, or a new head begun."""
        if self.body is not None:
            if self.body.is_eof():
                self.body = None
                self.due = None
        elif data and not self.handling and self.due is None:
            # the first bytes of a request on a kept-alive connection (a head that arrived whole
            # is disarmed again when aiohttp asks for its request)
            self.arm(self.head_too_slow)

    def head_arrived(self, body: StreamReader) -> None:
        """aiohttp parsed a request head and builds its request: the body's turn."""
        self.due = None
        self.handling = True
        self.guard.busy(self.handler, busy=True)
        if not body.is_eof():
            self.body = body
            self.arm(self.body_too_slow)

    def answered(self) -> None:
        """The response is written: idle until the next request (or closed, after a slow body)."""
        self.handling = False
        self.body = None
        self.due = None
        if self.close_after_answer:
            self.handler.force_close()
        else:
            self.guard.busy(self.handler, busy=False)

    def arm(self, callback: Callable[[], None]) -> None:
        """``callback`` at ``read_timeout`` from now, unless disarmed (``due = None``) first."""
        self.due = self.loop.time() + self.guard.read_timeout
        self.on_due = callback
        if self.timer is None:
            self.timer = self.loop.call_at(self.due, self.deadline_reached)

    def deadline_reached(self) -> None:
        self.timer = None
        due = self.due
        if due is None:
            return
        if due > self.loop.time():  # re-armed since the timer was set: wait for the new one
            self.timer = self.loop.call_at(due, self.deadline_reached)
            return
        self.due = None
        self.on_due()

    def head_too_slow(self) -> None:
        self.guard.metrics.connections_closed.labels("slow_head").inc()
        self.handler.force_close()

    def body_too_slow(self) -> None:
        body, self.body = self.body, None
        if body is None or body.is_eof():
            return
        self.guard.metrics.connections_closed.labels("slow_body").inc()
        self.close_after_answer = True  # answer, then close: no more waiting for the rest
        seconds = f"{self.guard.read_timeout:g}"
        body.set_exception(
            InvalidRequest(
                f"The request body did not arrive within {seconds} s.",
                details={"readTimeout": self.guard.read_timeout},
            )
        )


class GuardedHandler(web.RequestHandler):
    """aiohttp's connection protocol, with read deadlines, the guard's count and JSON errors,
    added by overriding public methods only; the state is in ``terms``."""

    def __init__(self, manager: web.Server, guard: Guard, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self.terms = Terms(self, guard)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.terms.opened()

    def connection_lost(self, exc: BaseException | None) -> None:
        self.terms.closed()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self.terms.received(data)

    async def finish_response(
        self, request: web.BaseRequest, resp: web.StreamResponse, start_time: float | None
    ) -> tuple[web.StreamResponse, bool]:
        answered = await super().finish_response(request, resp, start_time)
        self.terms.answered()
        return answered

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
            self.terms.guard.malformed(
                request.remote,
                error.message,
                extra={"fields": {"request_id": request_id, "status": error.status}},
            )
            self.terms.guard.metrics.http_errors.labels(str(error.status)).inc()
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
    to ``serve``.

    On the protocol port ``serve`` is the request path on aiohttp's low-level server: no router,
    no application layer, no middleware; the request path matches the protocol's endpoints
    itself. On the management port it is an application's handler with its request factory
    (``make_request``), both read from the public attributes of the ``web.Server`` that
    ``web.AppRunner`` makes (see :func:`for_app`)."""

    def __init__(
        self,
        serve: Serve,
        guard: Guard,
        *,
        max_body: int = 1024**2,
        make_request: RequestFactory | None = None,
        backlog: int = 128,
        tls: Handshakes | None = None,
        **handler_args: Any,
    ) -> None:
        loop = asyncio.get_running_loop()

        def base_request(
            message: RawRequestMessage,
            payload: StreamReader,
            protocol: web.RequestHandler,
            writer: AbstractStreamWriter,
            task: asyncio.Task[None],
        ) -> web.BaseRequest:
            return web.BaseRequest(
                message, payload, protocol, writer, task, loop, client_max_size=max_body
            )

        made = make_request or base_request

        def request(
            message: RawRequestMessage,
            payload: StreamReader,
            protocol: web.RequestHandler,
            writer: AbstractStreamWriter,
            task: asyncio.Task[None],
        ) -> web.BaseRequest:
            if isinstance(protocol, GuardedHandler):  # always: the listener makes its handlers
                protocol.terms.head_arrived(payload)
            return made(message, payload, protocol, writer, task)

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

    @classmethod
    def for_app(cls, server: web.Server, guard: Guard, **handler_args: Any) -> Listener:
        """A listener for an application: the handler and request factory of ``server`` (the
        ``server`` of a ``web.AppRunner`` that was set up), within ``guard``'s terms."""
        return cls(
            server.request_handler, guard, make_request=server.request_factory, **handler_args
        )

    async def bind(self, host: str, port: int) -> None:
        """Listen on the address; connections wait in the kernel's backlog until :meth:`start`."""
        loop = asyncio.get_running_loop()
        family, _, _, _, address = (
            await loop.getaddrinfo(
                host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )
        )[0]
        listening = socket.create_server(address[:2], family=family, backlog=self.backlog)
        listening.setblocking(False)  # noqa: FBT003 - the socket API
        self.socket = listening

    async def start(self, host: str, port: int) -> None:
        """Accept connections on the address (bound now, unless :meth:`bind` was called)."""
        if self.socket is None:
            await self.bind(host, port)
        assert self.socket is not None
        self._tasks.loop("accept", functools.partial(self._accept_forever, self.socket))

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
