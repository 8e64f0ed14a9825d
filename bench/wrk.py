"""Driving load with ``wrk`` and measuring what the server process spent on it.

``wrk`` (C, one thread) sends a file of pre-signed requests once each (``presigned.lua``) and
is interrupted when they run out; the server's CPU time is read from ``/proc/PID/stat`` (user +
system) before and after, which is steadier than requests per second on a shared machine.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from bench import presigned

SCRIPT = Path(__file__).resolve().parent / "presigned.lua"
_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Run:
    requests: int
    seconds: float
    cpu_seconds: float  # of the server process
    p50_ms: float
    p99_ms: float
    errors: int  # non-2xx/3xx answers and socket errors

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    @property
    def cpu_us(self) -> float:
        """Server CPU per request, in microseconds."""
        return self.cpu_seconds / self.requests * 1e6


def binary() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit("wrk is not installed: apt-get install -y --no-install-recommends wrk")
    return found


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime: fields 14 and 15


def run(url: str, requests: Path, connections: int, pid: int) -> Run:
    """Send every request in the file once over ``connections`` keep-alive connections."""
    marker = requests.with_suffix(".done")
    marker.unlink(missing_ok=True)
    command = [binary(), "-t1", f"-c{connections}", "-d600s", "--timeout", "10s"]
    command += ["-s", str(SCRIPT), url, "--", str(requests), str(marker), str(presigned.SPARE)]
    before = cpu_seconds(pid)
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as wrk:
        deadline = time.monotonic() + 600
        while not marker.exists() and wrk.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)  # polling a file: the measured server is another process
        wrk.send_signal(signal.SIGINT)  # wrk prints its summary and exits
        out, err = wrk.communicate(timeout=60)
    spent = cpu_seconds(pid) - before
    if not out.strip():
        raise RuntimeError(f"wrk failed: {err}")
    summary = json.loads(out.strip().splitlines()[-1])
    return Run(
        requests=summary["requests"],
        seconds=summary["duration_us"] / 1e6,
        cpu_seconds=spent,
        p50_ms=summary["p50_us"] / 1000,
        p99_ms=summary["p99_us"] / 1000,
        errors=summary["status_errors"] + summary["socket_errors"],
    )
