"""A real ``redis-server`` on a free loopback port, for the tests of shared state.

No persistence by default (``--save ""``, no AOF), so a restart loses the data, as a Redis
without a volume would; ``appendonly=True`` keeps it in an append-only file, as a Redis with a
volume does (a SIGKILL loses nothing: the file is written before each reply). ``kill`` is
SIGKILL; ``restart`` starts it again on the same port.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.service import free_port


def redis_server_command() -> str:
    """``redis-server`` on PATH, else Debian's /usr/bin/redis-server."""
    found = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(found).exists():
        raise RuntimeError(
            "redis-server is not installed: apt-get install redis-server (see docs/development.md)"
        )
    return found


def ping(port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(64).startswith((b"+PONG", b"-NOAUTH"))  # up, with or without auth
    except OSError:
        return False


def command(port: int, *args: str) -> bytes:
    """One command over the wire protocol (RESP), for test set-up and inspection."""
    parts = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = arg.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
        conn.sendall(b"".join(parts))
        return conn.recv(65536)


@dataclass
class RedisServer:
    directory: Path
    password: str | None = None
    appendonly: bool = False
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, deadline: float = 10.0) -> None:
        args = [
            redis_server_command(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--dir", str(self.directory),
            "--logfile", str(self.directory / "redis.log"),
        ]  # fmt: skip
        if self.password:
            args += ["--requirepass", self.password]
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL)
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}")
            if ping(self.port):
                return
            time.sleep(0.02)  # polling with a deadline until it answers
        raise TimeoutError("redis-server did not start")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
        self.process = None

    def restart(self) -> None:
        self.kill()
        self.start()


class Partition:
    """A loopback TCP proxy in front of Redis that the test can cut: its connections are
    closed and new ones refused (one replica cut off from Redis, the others not), then mended
    on the same port."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def mend(self) -> None:
        self._server = await asyncio.start_server(self._pipe, "127.0.0.1", self.port)

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        self._writers |= {writer, up_writer}

        async def copy(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.transport.abort()

        await asyncio.gather(copy(reader, up_writer), copy(up_reader, writer))
        self._writers -= {writer, up_writer}


class Relay:
    """A loopback TCP proxy in front of Redis whose client connections outlive a Redis
    restart, as a Redis proxy's do in a failover: the test ``hold``s it (client bytes wait),
    restarts Redis, and ``resume``s it; each client connection's next bytes then go to Redis
    on a fresh connection. A replica behind it sees no failed call across the restart."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.port = free_port()
        self.generation = 0  # moved by ``resume``: connections to Redis from before are stale
        self._open = asyncio.Event()
        self._open.set()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    def hold(self) -> None:
        self._open.clear()

    def resume(self) -> None:
        self.generation += 1
        self._open.set()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        up: asyncio.StreamWriter | None = None
        back: asyncio.Task[None] | None = None
        generation = -1

        async def replies(source: asyncio.StreamReader) -> None:
            with contextlib.suppress(OSError):
                while data := await source.read(65536):
                    writer.write(data)
                    await writer.drain()

        hello = b""  # the client's HELLO (its protocol version), said again to a fresh Redis
        try:
            while data := await reader.read(65536):
                await self._open.wait()
                if up is None or back is None or generation != self.generation:
                    if back is not None:
                        back.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await back
                    if up is not None:
                        up.close()
                    up_reader, up = await asyncio.open_connection("127.0.0.1", self.target)
                    if generation >= 0 and hello:
                        await _greet(up_reader, up, hello)
                    elif data.startswith(b"*2\r\n$5\r\nHELLO\r\n"):
                        hello = data
                    back = asyncio.create_task(replies(up_reader))
                    generation = self.generation
                up.write(data)
                await up.drain()
        except OSError:
            pass
        finally:
            if back is not None:
                back.cancel()
            if up is not None:
                up.close()
            writer.close()
            self._writers.discard(writer)


async def _greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, hello: bytes) -> None:
    """Say the client's HELLO to a fresh connection, and swallow its answer (up to an ECHO)."""
    token = b"relay-greeted"
    writer.write(hello + b"*2\r\n$4\r\nECHO\r\n$%d\r\n%s\r\n" % (len(token), token))
    await writer.drain()
    await reader.readuntil(token + b"\r\n")
