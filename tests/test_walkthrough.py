"""The README's five-minute walkthrough, run as written: `make demo`'s script (dev/demo.sh) on
free ports, then every command of the walkthrough's blocks, each expected to answer what its
comment says (HTTP 200 unless a status is named)."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.service import REPO, clean_env, command, free_port, wait_for

README = (REPO / "README.md").read_text(encoding="utf-8")
SECTION = README.split("## Five minutes on a laptop", 1)[1].split("\n## ", 1)[0]


@dataclass
class Step:
    argv: list[str]
    comment: str


def steps() -> list[Step]:
    """The shell commands of the walkthrough, continuation lines joined, comments kept (a line
    that is only a comment belongs to the command before it)."""
    found: list[Step] = []
    for block in re.findall(r"```sh\n(.*?)```", SECTION, flags=re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            code, _, comment = line.partition(" #")
            if not code.strip():
                found[-1].comment += comment
                continue
            found.append(Step(shlex.split(code), comment))
    return found


@dataclass
class Demo:
    port: int
    management_port: int
    emulator_port: int


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    """dev/demo.sh (what `make demo` runs) on free ports, with the shipped table pointed at
    the emulator's port; stopped as Ctrl-C would, by signalling its process group."""
    ports = Demo(free_port(), free_port(), free_port())
    table = tmp_path / "routing.local.yaml"
    shipped = (REPO / "config" / "routing.local.yaml").read_text()
    table.write_text(shipped.replace("127.0.0.1:8787", f"127.0.0.1:{ports.emulator_port}"))
    log = tmp_path / "demo.log"
    with log.open("w") as sink:
        process = subprocess.Popen(
            [str(REPO / "dev" / "demo.sh")],
            cwd=REPO,
            env=clean_env(
                {
                    "DEMO_BIN": str(Path(sys.executable).parent),
                    "DEMO_EMULATOR_PORT": str(ports.emulator_port),
                    "DEMO_CONFIG": str(table),
                    "DNS_SIDECAR_PORT": str(ports.port),
                    "DNS_SIDECAR_MANAGEMENT_PORT": str(ports.management_port),
                }
            ),
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for(lambda: _ready(ports) or process.poll() is not None, deadline=60)
        assert process.poll() is None, log.read_text()
        yield ports
    finally:
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=30)
    # the emulator went with it: its port is free again
    wait_for(lambda: not _answers(f"http://127.0.0.1:{ports.emulator_port}/__emulator/stats"))


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False


def _ready(ports: Demo) -> bool:
    return _answers(f"http://127.0.0.1:{ports.management_port}/readyz")


def run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=REPO, env=clean_env(env), capture_output=True, text=True, timeout=60, check=False
    )


def test_the_readme_walkthrough_runs_as_written(demo: Demo) -> None:
    """Each command of the walkthrough answers as its comment says, on the shipped table."""
    env: dict[str, str] = {}
    url = f"http://127.0.0.1:{demo.port}"
    seen = []
    for step in steps():
        program, *args = step.argv
        if step.argv == ["make", "demo"]:
            continue  # the fixture runs it
        if program == "export":
            name, _, value = args[0].partition("=")
            assert value == "$(cat config/local/hmac-secret)"
            env[name] = (REPO / "config" / "local" / "hmac-secret").read_text().strip()
        elif program == ".venv/bin/dns-sidecar" and args[0] == "request":
            result = run([*command(*args), "--url", url], env)
            status = re.search(r"\b([1-5]\d\d)\b", step.comment)
            expected = f"HTTP {status.group(1) if status else 200}"
            assert result.stdout.splitlines()[0] == expected, (step, result.stdout)
            seen.append(expected)
        elif program == ".venv/bin/dns-sidecar" and args[0] == "check":
            result = run(command(*args), env)
            strict = "--strict" in args
            assert (result.returncode, "DEMO_CLOUDFLARE_TOKEN" in result.stderr) == (
                1 if strict else 0,
                True,
            ), result.stderr
            seen.append(f"check {'strict' if strict else 'warns'}")
        elif program == "python3" and args == ["dev/emulator-records.py"]:
            emulator = f"http://127.0.0.1:{demo.emulator_port}"
            result = run([sys.executable, *args, "--url", emulator], env)
            assert result.returncode == 0, result.stderr
            lines = [line.split() for line in result.stdout.splitlines()]
            assert [line[:3] for line in lines if line[0] in ("A", "MX")] == [
                ["A", "www.demo.example", "192.0.2.10"],
                ["A", "www.demo.example", "192.0.2.11"],
                ["MX", "lab.example", "mail.lab.example"],
            ]
            seen.append("records")
        elif program == "curl":
            status_url = f"http://127.0.0.1:{demo.management_port}/status"
            with urllib.request.urlopen(status_url, timeout=5) as reply:
                body = json.load(reply)
            assert [z["zone"] for z in body["zones"]] == ["demo.example", "lab.example"]
            seen.append("status")
        else:
            pytest.fail(f"the walkthrough has a command this test does not know: {step.argv}")
    assert seen == [
        "HTTP 200",
        "HTTP 200",
        "HTTP 200",
        "records",
        "HTTP 403",
        "HTTP 401",
        "HTTP 400",
        "status",
        "check warns",
        "check strict",
    ]


def test_the_walkthrough_upsert_sent_again_is_unchanged(demo: Demo) -> None:
    """As the README says: the first upsert sent a second time is "Record unchanged"."""
    first = next(s for s in steps() if "--data" in s.argv)
    env = {"HMAC_SECRET": (REPO / "config" / "local" / "hmac-secret").read_text().strip()}
    url = f"http://127.0.0.1:{demo.port}"
    replies = [run([*command(*first.argv[1:]), "--url", url], env) for _ in range(2)]
    assert [json.loads(r.stdout.split("\n", 1)[1])["message"] for r in replies] == [
        "Record created successfully",
        "Record unchanged (already up to date)",
    ]
