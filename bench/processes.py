"""Starting what is measured as real processes on loopback, and reading their memory."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mib(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_mib(pid: int) -> float:
    """The highest RSS the process has had (``VmHWM``)."""
    return rss_mib(pid, "VmHWM")


def wait_for(check: Callable[[], bool], what: str, deadline: float = 30.0) -> float:
    """Seconds until ``check()`` holds (an ``OSError`` counts as not yet), polling with a
    deadline."""
    started = time.perf_counter()
    while time.perf_counter() - started < deadline:
        with contextlib.suppress(OSError):
            if check():
                return time.perf_counter() - started
        time.sleep(0.005)
    raise TimeoutError(what)


def wait_http(url: str, deadline: float = 30.0) -> float:
    """Seconds until ``url`` answers 200 (polling with a deadline)."""

    def ok() -> bool:
        with urllib.request.urlopen(url, timeout=1) as reply:
            return bool(reply.status == 200)

    return wait_for(ok, url, deadline)


@dataclass
class Proc:
    process: subprocess.Popen[bytes]
    port: int
    management_port: int = 0
    ready_seconds: float = 0.0
    log: Path | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def rss(self) -> float:
        return rss_mib(self.process.pid)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()


def _env(extra: dict[str, str] | None) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DNS_SIDECAR_", "HMAC_", "CLOUDFLARE_")) and k != "PORT"
    }
    # as it ships: the JSON access log at INFO (its stderr goes to a file, see ``sidecar``)
    env |= {"DNS_SIDECAR_LOG_FORMAT": "json", "DNS_SIDECAR_LOG_LEVEL": "INFO"}
    return env | (extra or {})


@contextlib.contextmanager
def sidecar(*args: str, env: dict[str, str] | None = None, source: Path = REPO) -> Iterator[Proc]:
    """``dns-sidecar serve`` as it ships; its output (the access log) goes to a file on disk,
    as a container runtime writes a pod's stdout and stderr to a file. ``source``: the tree
    whose ``sidecar`` package runs (``python -m`` imports it from there)."""
    port, management = free_port(), free_port()
    command = [
        sys.executable,
        "-m",
        "sidecar",
        "serve",
        "--port",
        str(port),
        "--management-port",
        str(management),
        *args,
    ]
    with tempfile.TemporaryDirectory(prefix="dns-sidecar-bench-log-") as tmp:
        log = Path(tmp) / "sidecar.log"
        started = time.perf_counter()
        with log.open("wb") as out:
            process = subprocess.Popen(command, env=_env(env), cwd=source, stdout=out, stderr=out)
        proc = Proc(process, port, management, log=log)
        try:
            wait_http(f"http://127.0.0.1:{management}/readyz")
            proc.ready_seconds = time.perf_counter() - started
            yield proc
        finally:
            proc.stop()


@contextlib.contextmanager
def _serving(command: list[str], port: int, ready: Callable[[Proc], object]) -> Iterator[Proc]:
    process = subprocess.Popen(
        command, env=_env(None), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    proc = Proc(process, port)
    try:
        ready(proc)
        yield proc
    finally:
        proc.stop()


def _http_ready(path: str) -> Callable[[Proc], object]:
    return lambda proc: wait_http(proc.url + path)


def emulator(*zones: str) -> contextlib.AbstractContextManager[Proc]:
    """The Cloudflare emulator with ``zones`` and the token ``bench-token``."""
    port = free_port()
    zone_args = [arg for zone in zones for arg in ("--zone", zone)]
    command = [
        sys.executable,
        "-m",
        "sidecar",
        "cloudflare-emulator",
        "--port",
        str(port),
        "--token",
        "bench-token",
        *zone_args,
    ]
    return _serving(command, port, _http_ready("/__emulator/stats"))


def bare(*, low_level: bool = False) -> contextlib.AbstractContextManager[Proc]:
    """The bare aiohttp JSON handler: the ceiling of scenario 1 (``low_level``: on aiohttp's
    low-level server, as the sidecar's protocol port runs)."""
    port = free_port()
    command = [sys.executable, str(REPO / "bench" / "bare_server.py"), str(port)]
    command += ["low-level"] if low_level else []
    return _serving(command, port, _http_ready("/health"))


@contextlib.contextmanager
def redis_server(directory: Path) -> Iterator[str]:
    """Debian's ``redis-server`` on a free port, without persistence; yields its URL."""
    port = free_port()
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    command += ["--appendonly", "no", "--dir", str(directory)]

    def pong() -> bool:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")

    with _serving(command, port, lambda _: wait_for(pong, f"redis-server on port {port}")):
        yield f"redis://127.0.0.1:{port}/0"


def access_lines(proc: Proc) -> int:
    """Access-log lines the sidecar has written so far."""
    if proc.log is None:
        return 0
    with proc.log.open("rb") as log:
        return sum(b'"sidecar.access"' in line for line in log)
