"""The ``dns-sidecar`` command as a user runs it: serve, SIGTERM, loopback rule, request, check."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from sidecar.cli import main
from tests.service import REPO, clean_env, command, emulator, free_port, running, wait_for

RECORD = json.dumps(
    {
        "record": {
            "type": "A",
            "domain": "example.com",
            "subdomain": "www",
            "values": ["192.0.2.1", "192.0.2.2"],
            "ttl": 600,
        },
        "operation": "upsert",
    }
)


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command(*args),
        env=clean_env(env),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_request_signs_like_the_operator() -> None:
    """`dns-sidecar request` with --secret talks to a server with HMAC_SECRET; without, refused."""
    with running(env={"HMAC_SECRET": "s3cret", "HMAC_ALGORITHM": "SHA512"}) as service:
        created = run(
            "request",
            "POST",
            "/records",
            "--data",
            RECORD,
            "--url",
            service.url,
            "--secret",
            "s3cret",
            "--algorithm",
            "SHA512",
        )
        assert created.returncode == 0, created.stderr
        assert created.stdout.startswith("HTTP 200\n")
        assert json.loads(created.stdout.split("\n", 1)[1])["record"]["values"] == [
            "192.0.2.1",
            "192.0.2.2",
        ]
        got = run(
            "request",
            "GET",
            "/records/A/example.com/www",
            "--url",
            service.url,
            env={"HMAC_SECRET": "s3cret", "HMAC_ALGORITHM": "SHA512"},
        )
        assert got.returncode == 0, got.stdout  # the server's own environment names
        wrong = run(
            "request",
            "GET",
            "/records/A/example.com/www",
            "--url",
            service.url,
            env={"HMAC_SECRET": "s3cret"},
        )
        assert wrong.returncode == 1  # SHA256 by default: not what the server verifies
        assert "AUTH_FAILED" in wrong.stdout
        unsigned = run("request", "GET", "/health", "--url", service.url)
        assert unsigned.returncode == 1
        assert "missing header(s)" in unsigned.stdout
        code, logged = service.stop()
    assert code == 0
    assert "s3cret" not in logged  # secrets are never logged
    lines = [json.loads(line) for line in logged.splitlines()]
    access = [line for line in lines if line["logger"] == "sidecar.access"]
    assert [(a["method"], a["status"]) for a in access] == [
        ("POST", 200),
        ("GET", 200),
        ("GET", 401),
        ("GET", 401),
    ]
    assert access[0]["fqdn"] == "www.example.com"
    assert access[0]["account"] == "memory"
    assert access[0]["client"] == "env"
    assert {"request_id", "duration_ms", "path", "provider_calls"} <= set(access[0])


def test_sigterm_drains_in_flight_request_and_exits_zero() -> None:
    """A request still sending its body at SIGTERM is answered; then the process exits 0."""
    with running() as service:
        body = RECORD.encode()
        with socket.create_connection(("127.0.0.1", service.port), timeout=10) as conn:
            conn.sendall(
                b"POST /records HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body[:10]
            )
            wait_for(
                lambda: (
                    "dns_sidecar_requests_in_flight 1.0"
                    in _get(service.management_url + "/metrics")
                )
            )
            service.process.send_signal(signal.SIGTERM)
            _wait_for_log(service.log, "shutting down", 10)
            conn.sendall(body[10:])
            reply = b""
            while chunk := conn.recv(65536):
                reply += chunk
        assert reply.startswith(b"HTTP/1.1 200"), reply[:200]
        assert b'"Record created successfully"' in reply
        assert service.process.wait(timeout=30) == 0


def test_sigterm_keeps_accepting_for_the_drain_delay() -> None:
    """DNS_SIDECAR_DRAIN_DELAY: /readyz says draining at once, a new connection is still served
    meanwhile (a Service may still route here), and the whole shutdown fits its timeout."""
    env = {"DNS_SIDECAR_DRAIN_DELAY": "2", "DNS_SIDECAR_SHUTDOWN_TIMEOUT": "6"}
    with running(env=env) as service:
        started = time.monotonic()
        service.process.send_signal(signal.SIGTERM)
        wait_for(lambda: _status(service.management_url + "/readyz") == 503)
        assert json.loads(_get(service.url + "/health"))["status"] == "healthy"
        assert service.process.wait(timeout=10) == 0
        took = time.monotonic() - started
    assert 2 <= took <= 7, took


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as err:
        return err.code


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as reply:
        return str(reply.read().decode())


def _wait_for_log(log: Path, text: str, deadline: float) -> None:
    wait_for(lambda: text in log.read_text(), deadline)


def test_refuses_non_loopback_without_secret() -> None:
    """0.0.0.0 without a secret exits 2 with a clear error, unless --allow-unauthenticated."""
    refused = run(
        "serve",
        "--host",
        "0.0.0.0",  # noqa: S104 - the point of the test
        "--port",
        str(free_port()),
        "--management-port",
        str(free_port()),
    )
    assert refused.returncode == 2
    assert "Refusing to listen on 0.0.0.0 without an HMAC secret" in refused.stderr
    with (
        running(["--host", "0.0.0.0", "--allow-unauthenticated"]) as service,  # noqa: S104
        urllib.request.urlopen(service.url + "/health", timeout=5) as reply,
    ):
        assert reply.status == 200
    with running(["--host", "0.0.0.0"], env={"DNS_SIDECAR_HMAC_SECRET": "x"}):  # noqa: S104
        pass  # a secret makes any address acceptable


def test_guide_environment_names() -> None:
    """PORT is honoured like DNS_SIDECAR_PORT (flags still win)."""
    port, management = free_port(), free_port()
    process = subprocess.Popen(
        command("serve", "--management-port", str(management)),
        env=clean_env({"PORT": str(port)}),
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        end = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
                    assert r.status == 200
                    break
            except OSError:
                if time.monotonic() > end or process.poll() is not None:
                    raise
                time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0


def test_check_accepts_the_example_table() -> None:
    """`check` exits 0 on the shipped example routing table."""
    result = run("check", "config/routing.example.yaml")
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


def test_check_lists_every_problem(tmp_path: Path) -> None:
    """`check` exits 1 and names each problem with its key path and line."""
    table = tmp_path / "bad.yaml"
    table.write_text(
        "version: 1\n"
        "accounts:\n"
        "  - {name: a, provider: memory}\n"
        "  - {name: a, provider: memory, colour: red}\n"
        "zones:\n"
        "  - {name: example.com, account: b}\n"
    )
    result = run("check", str(table))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"{table}: 3 problem(s)",
        "  - accounts[1].colour (line 4): unknown key",
        "  - accounts[1].name (line 4): duplicate name 'a' (first at accounts[0])",
        (
            "  - zones[0].account (line 6): zone 'example.com' names account 'b', which is not "
            "defined (accounts: a)"
        ),
    ]


def test_serve_refuses_an_invalid_table(tmp_path: Path) -> None:
    """A broken routing table at start is an error exit, not a half-configured server."""
    table = tmp_path / "bad.yaml"
    table.write_text("version: 2\n")
    result = run(
        "serve",
        "--config",
        str(table),
        "--port",
        str(free_port()),
        "--management-port",
        str(free_port()),
    )
    assert result.returncode == 2
    assert "invalid routing table" in result.stderr


@pytest.mark.parametrize("args", [["--version"], ["serve", "--help"]])
def test_help_and_version(args: list[str]) -> None:
    """The command explains itself."""
    result = run(*args)
    assert result.returncode == 0
    assert "dns-sidecar" in result.stdout


def test_emulator_command_and_seed_compatible_mode(tmp_path: Path) -> None:
    """`cloudflare-emulator` runs; with only CLOUDFLARE_* set, serve uses it for every zone."""
    with emulator(tmp_path / "emulator.log", "example.com", "example.net") as cloudflare:
        base = cloudflare.url + "/client/v4"
        seed = {"CLOUDFLARE_API_TOKEN": "dev-token", "CLOUDFLARE_BASE_URL": base}
        with running(env=seed) as service:
            created = run("request", "POST", "/records", "--data", RECORD, "--url", service.url)
            assert created.returncode == 0, created.stdout
            outside = run("request", "GET", "/records/A/example.org/www", "--url", service.url)
            assert outside.returncode == 1
            assert "DOMAIN_NOT_ALLOWED" in outside.stdout
            status = json.loads(_get(service.management_url + "/status"))
            assert status["config"]["source"].startswith("CLOUDFLARE_* environment")
        stats = json.loads(_get(cloudflare.url + "/__emulator/stats"))
        assert stats["requests"]["POST /zones/{zone_id}/dns_records/batch"] == 1
    assert cloudflare.process.returncode == 0  # SIGTERM ends it cleanly


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (
            ["request", "GET", "records/A/example.com/www"],
            "dns-sidecar: the path must start with '/', for example /records/A/example.com/www\n",
        ),
        (
            ["request", "GET", "/health", "--url", "127.0.0.1:7100"],
            (
                "dns-sidecar: --url '127.0.0.1:7100' is not an http:// or https:// URL "
                "(for example http://127.0.0.1:7100)\n"
            ),
        ),
        (
            ["serve", "--port", "99999"],
            (
                "dns-sidecar: invalid setting port (DNS_SIDECAR_PORT, PORT, --port): 99999: "
                "must be a whole number between 0 and 65535\n"
            ),
        ),
    ],
)
def test_first_use_mistakes_get_one_line(
    args: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A path without '/', a URL without a scheme, a port out of range: one line, exit 2."""
    assert main(args) == 2
    assert capsys.readouterr() == ("", said)


def test_unknown_option_shows_the_commands_usage(capsys: pytest.CaptureFixture[str]) -> None:
    """`serve --bogus` is answered with serve's usage, not the top level's."""
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--bogus"])
    err = capsys.readouterr().err
    assert (exited.value.code, err.splitlines()[0], err.splitlines()[-1]) == (
        2,
        "usage: dns-sidecar serve [-h] [--config CONFIG] [--host HOST] [--port PORT]",
        "dns-sidecar serve: error: unrecognized arguments: --bogus",
    )


@pytest.mark.parametrize(
    ("command_name", "documented"),
    [
        ("check", ["PATH        the routing table YAML file"]),
        ("request", ["with http:// or https:// (default", "http://127.0.0.1:7100)"]),
        ("cloudflare-emulator", ["listen address (default 127.0.0.1)", "(default 8787)"]),
    ],
)
def test_help_documents_arguments_and_defaults(
    command_name: str, documented: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Every argument's help says what it is and its default."""
    with pytest.raises(SystemExit):
        main([command_name, "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert [text for text in documented if " ".join(text.split()) not in shown] == []


def test_request_into_a_closed_pipe_says_so_in_one_line() -> None:
    """`dns-sidecar request ... | head` with the reader gone: one line on stderr, no traceback."""
    with running() as service:
        reader, writer = os.pipe()
        os.close(reader)
        try:
            result = subprocess.run(
                command("request", "GET", "/health", "--url", service.url),
                env=clean_env(),
                cwd=REPO,
                stdout=writer,
                stderr=subprocess.PIPE,
                text=True,
                timeout=60,
                check=False,
            )
        finally:
            os.close(writer)
    assert (result.returncode, result.stderr) == (
        1,
        "dns-sidecar: output closed early (broken pipe)\n",
    )
