"""What the processes log: one access line per request (not one more per Cloudflare call), and
the emulator stopping on SIGTERM while a slowed request is pending."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.service import clean_env, command, emulator, running, wait_for

RECORD = json.dumps(
    {
        "record": {"type": "A", "domain": "example.com", "subdomain": "www", "values": ["1.2.3.4"]},
        "operation": "upsert",
    }
)


def _get(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=5) as reply:
        return dict(json.loads(reply.read()))


def test_cloudflare_calls_are_counted_in_the_access_line_not_logged_one_by_one(
    tmp_path: Path,
) -> None:
    """An upsert through Cloudflare (3 calls: zone lookup, read, batch) logs one access line
    that counts them, and no line of the HTTP client per call."""
    with emulator(tmp_path / "emulator.log", "example.com") as cloudflare:
        seed = {
            "CLOUDFLARE_API_TOKEN": "dev-token",
            "CLOUDFLARE_BASE_URL": cloudflare.url + "/client/v4",
            "DNS_SIDECAR_LOG_LEVEL": "INFO",
        }
        with running(env=seed) as service:
            done = subprocess.run(
                command("request", "POST", "/records", "--data", RECORD, "--url", service.url),
                env=clean_env(),
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert done.returncode == 0, done.stdout
            code, logged = service.stop()
    assert code == 0, logged
    lines = [json.loads(line) for line in logged.splitlines() if line.startswith("{")]
    assert [line for line in lines if not line["logger"].startswith("sidecar")] == []
    access = [line for line in lines if line["logger"] == "sidecar.access"]
    assert [(a["method"], a["path"], a["status"], a["provider_calls"]) for a in access] == [
        ("POST", "/records", 200, 3)
    ]


def test_the_emulator_stops_on_sigterm_while_a_slowed_request_is_pending(tmp_path: Path) -> None:
    """SIGTERM with a request held by injected latency: the emulator exits within its bounded
    shutdown, not once the request's 60 s are over."""
    with emulator(tmp_path / "emulator.log", "example.com") as cloudflare:
        faults = urllib.request.Request(
            cloudflare.url + "/__emulator/faults",
            data=json.dumps({"latency": 60}).encode(),
            headers={"Content-Type": "application/json"},
        )
        urllib.request.urlopen(faults, timeout=5).close()
        slowed = urllib.request.Request(
            cloudflare.url + "/client/v4/zones", headers={"Authorization": "Bearer dev-token"}
        )
        outcome: list[object] = []

        def call() -> None:
            try:
                urllib.request.urlopen(slowed, timeout=90).close()
                outcome.append("answered")
            except (urllib.error.URLError, ConnectionError, OSError) as err:
                outcome.append(type(err).__name__)

        thread = threading.Thread(target=call, daemon=True)
        thread.start()
        wait_for(
            lambda: _get(cloudflare.url + "/__emulator/stats")["requests"] == {"GET /zones": 1}
        )
        started = time.monotonic()
        cloudflare.process.send_signal(signal.SIGTERM)
        cloudflare.process.wait(timeout=15)
        took = time.monotonic() - started
        thread.join(timeout=15)
    assert (cloudflare.process.returncode, took < 15, outcome != []) == (0, True, True)
