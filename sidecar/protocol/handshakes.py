"""TLS handshakes on the protocol port, held on the same terms as a request head.

With HTTPS the listener hands each accepted socket to :meth:`Handshakes.start` instead of
connecting it at once. Until its handshake ends, the connection is counted by the port's
:class:`~sidecar.protocol.connections.Guard` as one waiting for its request head, through a
:class:`Handshake` stand-in: the connection cap holds for connections still in their handshake,
and at the cap they are the first closed to make room. A handshake has ``read_timeout`` seconds
(it counts as a slow head: closed and counted as ``slow_head``); one that fails (plain HTTP sent
to the port, no common version or cipher, a client that rejects the certificate, a reset) is
closed at once, counted by reason, and said in one warning line a minute at most. A handshake
that succeeds hands the connection to aiohttp's handler, which the guard then counts itself.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable

from sidecar.observability.metrics import Metrics
from sidecar.protocol.connections import Guard, RateLimitedWarning
from sidecar.protocol.tls import LiveCertificate
from sidecar.tasks import Tasks

# OpenSSL's reasons for a ClientHello that is plain HTTP
_PLAIN_HTTP = frozenset({"HTTP_REQUEST", "HTTPS_PROXY_REQUEST"})


class Handshake:
    """A connection between accept and the end of its TLS handshake, as the guard sees it."""

    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn
        self.task: asyncio.Task[None] | None = None
        self.started = False  # the socket belongs to asyncio's transport from then on

    def force_close(self) -> None:
        """To make room at the cap, or at shutdown: the handshake is abandoned."""
        if self.task is not None:
            self.task.cancel()

    def on_done(self, task: asyncio.Task[None]) -> None:
        if not self.started:  # cancelled before it ran: nobody else will close the socket
            self.conn.close()


class Handshakes:
    """Runs each accepted connection's handshake on its own, within ``timeout`` seconds."""

    def __init__(
        self, live: LiveCertificate, guard: Guard, metrics: Metrics, timeout: float
    ) -> None:
        self.live = live
        self.guard = guard
        self.metrics = metrics  # the connection metrics; the TLS ones are live.metrics
        self.timeout = timeout
        self.failed = RateLimitedWarning("TLS handshake from %s failed (%s): %s")

    def start(
        self, conn: socket.socket, factory: Callable[[], asyncio.Protocol], tasks: Tasks
    ) -> None:
        """Count ``conn`` as waiting for its head, and run its handshake in ``tasks``."""
        handshake = Handshake(conn)
        self.guard.opened(handshake)
        handshake.task = tasks.spawn(self._run(handshake, factory), name="tls handshake")
        handshake.task.add_done_callback(handshake.on_done)

    async def _run(self, handshake: Handshake, factory: Callable[[], asyncio.Protocol]) -> None:
        handshake.started = True
        loop = asyncio.get_running_loop()
        try:
            peer = handshake.conn.getpeername()[0]
        except OSError:
            peer = "a client that left"
        try:
            async with asyncio.timeout(self.timeout):
                await loop.connect_accepted_socket(
                    factory,
                    handshake.conn,
                    ssl=self.live.context,
                    ssl_shutdown_timeout=self.timeout,  # a closed connection lingers no longer
                )
        except TimeoutError:
            self.metrics.connections_closed.labels("slow_head").inc()
            self._failed(peer, "timeout", f"no handshake within {self.timeout:g} s")
        except ssl.SSLError as err:
            reason = "plain_http" if err.reason in _PLAIN_HTTP else "tls"
            self._failed(peer, reason, err.reason or str(err))
        except OSError:  # reset, or closed by the client (a TCP probe): counted, not logged
            self.live.metrics.handshake_failures.labels("closed").inc()
        finally:
            self.guard.closed(handshake)

    def _failed(self, peer: str, reason: str, detail: str) -> None:
        self.live.metrics.handshake_failures.labels(reason).inc()
        if reason == "plain_http":
            detail = "plain HTTP sent to the HTTPS port; call it with https://"
        self.failed(peer, reason, detail)
