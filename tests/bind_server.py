"""A real BIND ``named`` on a free loopback port, for the tests of the RFC 2136 provider.

Its own working directory (configuration, zone files, journals), a TSIG key for the sidecar and
one for "someone else" (``nsupdate`` as an administrator would), dynamic zones, and a statistics
channel that counts the queries and UPDATE messages it received. ``stop`` ends it by its PID;
``start`` again serves the same zones (the journals keep the changes) on the same port.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import signal
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype

from tests.service import free_port

KEY_NAME = "dns-sidecar"
ADMIN_KEY = "admin"


def _secret(seed: str) -> str:
    return base64.b64encode(hashlib.sha256(seed.encode()).digest()).decode()


def named_command() -> str:
    """``named`` on PATH, else Debian's /usr/sbin/named."""
    found = shutil.which("named") or "/usr/sbin/named"
    if not Path(found).exists():
        raise RuntimeError("named is not installed: apt-get install bind9 (see the README)")
    return found


@dataclass
class BindServer:
    directory: Path
    zones: tuple[str, ...] = ("example.test",)
    no_transfer: tuple[str, ...] = ()  # zones that refuse AXFR to every key
    secret: str = field(default_factory=lambda: _secret("sidecar"))
    algorithm: str = "hmac-sha256"
    admin_secret: str = field(default_factory=lambda: _secret("admin"))
    port: int = field(default_factory=free_port)
    stats_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def write_config(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        zones = []
        for zone in (*self.zones, *self.no_transfer):
            path = self.directory / f"{zone}.db"
            if not path.exists():
                path.write_text(
                    "$TTL 300\n"
                    f"@ SOA ns.{zone}. hostmaster.{zone}. 1 3600 600 86400 300\n"
                    f"@ NS ns.{zone}.\n"
                    "ns A 127.0.0.1\n"
                )
            transfer = "none;" if zone in self.no_transfer else f'key "{KEY_NAME}";'
            zones.append(
                f'zone "{zone}" {{ type primary; file "{path}";\n'
                f'  update-policy {{ grant "{KEY_NAME}" zonesub ANY; '
                f'grant "{ADMIN_KEY}" zonesub ANY; }};\n'
                f"  allow-transfer {{ {transfer} }}; }};\n"
            )
        (self.directory / "named.conf").write_text(
            f"""options {{
  directory "{self.directory}";
  pid-file "{self.directory}/named.pid";
  session-keyfile "{self.directory}/session.key";
  managed-keys-directory "{self.directory}";
  listen-on port {self.port} {{ 127.0.0.1; }};
  listen-on-v6 {{ none; }};
  recursion no;
  dnssec-validation no;
  notify no;
  max-journal-size unlimited;
}};
controls {{ }};
statistics-channels {{ inet 127.0.0.1 port {self.stats_port} allow {{ 127.0.0.1; }}; }};
key "{KEY_NAME}" {{ algorithm {self.algorithm}; secret "{self.secret}"; }};
key "{ADMIN_KEY}" {{ algorithm hmac-sha256; secret "{self.admin_secret}"; }};
{"".join(zones)}"""
        )

    def start(self, deadline: float = 20.0) -> None:
        self.write_config()
        with (self.directory / "named.log").open("ab") as log:  # the child keeps its own copy
            self.process = subprocess.Popen(
                [named_command(), "-g", "-c", str(self.directory / "named.conf"), "-n", "1"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            if self.process.poll() is not None:
                tail = (self.directory / "named.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"named exited with {self.process.returncode}:\n{tail}")
            if self.answers():
                return
            time.sleep(0.02)  # polling with a deadline until it answers
        raise TimeoutError("named did not start")

    def answers(self) -> bool:
        """Whether every zone answers its SOA (the server is up and has loaded them)."""
        try:
            for zone in (*self.zones, *self.no_transfer):
                query = dns.message.make_query(zone, dns.rdatatype.SOA)
                reply = dns.query.udp(query, "127.0.0.1", timeout=0.5, port=self.port)
                if reply.rcode() != dns.rcode.NOERROR or not reply.answer:
                    return False
        except (OSError, dns.exception.DNSException):
            return False
        return True

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def serial(self, zone: str | None = None) -> int:
        query = dns.message.make_query(zone or self.zones[0], dns.rdatatype.SOA)
        reply = dns.query.tcp(query, "127.0.0.1", timeout=2, port=self.port)
        return int(reply.answer[0][0].serial)

    def nsupdate(self, *commands: str) -> None:
        """Change the zone as an administrator would, with ``nsupdate`` and the admin key."""
        script = f"server 127.0.0.1 {self.port}\n" + "\n".join(commands) + "\nsend\n"
        subprocess.run(
            [shutil.which("nsupdate") or "/usr/bin/nsupdate", "-y",
             f"hmac-sha256:{ADMIN_KEY}:{self.admin_secret}"],
            input=script.encode(),
            check=True,
            capture_output=True,
            timeout=20,
        )  # fmt: skip

    def counters(self) -> dict[str, int]:
        """Requests received by opcode (QUERY, UPDATE) and AXFRs, from the statistics channel."""
        url = f"http://127.0.0.1:{self.stats_port}/json/v1/server"
        with urllib.request.urlopen(url, timeout=5) as response:
            stats = json.load(response)
        opcodes = stats.get("opcodes", {})
        qtypes = stats.get("qtypes", {})
        return {
            "QUERY": int(opcodes.get("QUERY", 0)),
            "UPDATE": int(opcodes.get("UPDATE", 0)),
            "AXFR": int(qtypes.get("AXFR", 0)),
        }
