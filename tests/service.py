"""Run the real ``dns-sidecar`` command in a subprocess on free loopback ports."""

from __future__ import annotations

import contextlib
import functools
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Service:
    process: subprocess.Popen[str]
    port: int
    management_port: int
    log: Path  # stderr goes to a file: a pipe nobody reads would block the server when full

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def management_url(self) -> str:
        return f"http://127.0.0.1:{self.management_port}"

    def stop(self, timeout: float = 20) -> tuple[int, str]:
        """SIGTERM, then the exit code and everything it logged."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=timeout)
        return self.process.returncode, self.logged()

    def logged(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "sidecar", *args]


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DNS_SIDECAR_", "HMAC_", "CLOUDFLARE_")) and k != "PORT"
    }
    env["DNS_SIDECAR_LOG_FORMAT"] = "json"
    env.update(extra or {})
    return env


def wait_ready(service: Service, deadline: float = 20.0) -> None:
    """Poll /readyz until 200, the process dies, or the deadline passes."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if service.process.poll() is not None:
            code, logged = service.process.returncode, service.logged()
            raise RuntimeError(f"dns-sidecar exited with {code}: {logged}")
        try:
            with urllib.request.urlopen(service.management_url + "/readyz", timeout=1) as reply:
                if reply.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.05)  # polling with a deadline, not synchronising on a guess
    raise TimeoutError(f"dns-sidecar did not become ready in {deadline:g} s: {service.logged()}")


@dataclass
class EmulatorProcess:
    process: subprocess.Popen[bytes]
    url: str  # http://127.0.0.1:PORT; the API is under /client/v4


def wait_for(condition: Callable[[], bool], deadline: float = 20.0) -> None:
    """Poll ``condition`` until it holds, with a deadline (a subprocess cannot signal us)."""
    end = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > end:
            raise TimeoutError("condition not met in time")
        time.sleep(0.02)


@contextlib.contextmanager
def emulator(log: Path, *zones: str) -> Iterator[EmulatorProcess]:
    """``dns-sidecar cloudflare-emulator`` (token ``dev-token``) on a free port, logging to
    ``log``; stopped by SIGTERM at the end (``process.returncode`` says how it exited)."""
    port = free_port()
    args = [arg for zone in zones for arg in ("--zone", zone)]
    with log.open("w") as sink:
        process = subprocess.Popen(
            command("cloudflare-emulator", "--port", str(port), *args, "--token", "dev-token"),
            env=clean_env(),
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=sink,
        )
    try:
        wait_for(lambda: "Cloudflare API emulator on" in log.read_text())
        yield EmulatorProcess(process, f"http://127.0.0.1:{port}")
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _limit_descriptors(limit: int) -> None:
    resource.setrlimit(
        resource.RLIMIT_NOFILE, (limit, resource.getrlimit(resource.RLIMIT_NOFILE)[1])
    )


@contextlib.contextmanager
def running(
    args: Sequence[str] = (), env: dict[str, str] | None = None, *, fd_limit: int | None = None
) -> Iterator[Service]:
    """``dns-sidecar serve`` on free ports; ``fd_limit`` lowers its file-descriptor limit."""
    port, management = free_port(), free_port()
    limit = None if fd_limit is None else functools.partial(_limit_descriptors, fd_limit)
    with tempfile.TemporaryDirectory(prefix="dns-sidecar-") as tmp:
        log = Path(tmp) / "stderr.log"
        with log.open("w") as sink:
            process = subprocess.Popen(
                command("serve", "--port", str(port), "--management-port", str(management), *args),
                env=clean_env(env),
                cwd=REPO,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=sink,
                text=True,
                preexec_fn=limit,  # noqa: PLW1509 - only setrlimit, before exec, in the child
            )
        service = Service(process, port, management, log)
        try:
            wait_ready(service)
            yield service
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
