"""Scenario 8: the RFC 2136 provider against BIND on loopback (the same ``named`` the tests run).

Upserts go through the sidecar as it ships (HTTP, HMAC, the provider); the DNS messages each
operation cost are counted by BIND itself (its statistics channel: requests by opcode, AXFRs).
The sweep's listing of a 2 000-record zone is timed in-process, counted the same way.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import TypeVar

from bench import load, presigned, processes
from bench.scenarios import Row, Sizes, _met, _ms, _rps
from sidecar.auth.replay import ReplayCache
from sidecar.clock import SystemClock
from sidecar.coordination.local import LocalCoordination
from sidecar.providers.base import ZonePolicy
from sidecar.providers.ownership import Owner
from sidecar.providers.rfc2136.companion import companion_name
from sidecar.providers.rfc2136.provider import Rfc2136Provider
from sidecar.providers.rfc2136.server import DnsServer, TsigKey
from tests.bind_server import KEY_NAME, BindServer

T = TypeVar("T")

ZONE = "example.com"
SWEPT = "swept.example"


def _table(bind: BindServer) -> str:
    return (
        "version: 1\naccounts:\n"
        f"  - name: home\n    provider: rfc2136\n    server: '{bind.address}'\n"
        f"    tsig: {{name: {KEY_NAME}, secret: {{value: '{bind.secret}'}}}}\n"
        f"zones:\n  - {{name: {ZONE}, account: home}}\n"
    )


def _seed(directory: Path, records: int) -> None:
    """The swept zone's file, written before named starts: ``records`` sets, each with the
    companion of this deployment's marker."""
    marker = Owner().marker("managed by dns-sidecar")
    lines = [
        "$TTL 300",
        f"@ SOA ns.{SWEPT}. hostmaster.{SWEPT}. 1 3600 600 86400 300",
        f"@ NS ns.{SWEPT}.",
        "ns A 127.0.0.1",
    ]
    for i in range(records):
        name = f"h{i}.{SWEPT}"
        lines.append(f"{name}. A 192.0.2.{i % 250 + 1}")
        lines.append(f'{companion_name(name, "A", SWEPT)}. TXT "{marker}"')
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{SWEPT}.db").write_text("\n".join(lines) + "\n")


async def _counted(bind: BindServer, run: Awaitable[T]) -> tuple[T, dict[str, int]]:
    """What ``run`` returned, and the requests BIND received meanwhile (QUERY counts every
    query, AXFRs included)."""
    before = bind.counters()
    result = await run
    after = bind.counters()
    return result, {key: after[key] - before[key] for key in after}


def _per(delta: dict[str, int], count: int) -> str:
    return f"{delta['QUERY'] / count:.2f} queries + {delta['UPDATE'] / count:.2f} UPDATE"


def _tmpfs(tmp: Path) -> Path:
    """Where BIND's files go: tmpfs where there is one, since its journal write per UPDATE
    (about 3 ms on the disk of the machine this was written on) is the disk's figure, not the
    sidecar's; else ``tmp``."""
    shm = Path("/dev/shm")  # noqa: S108 - a private TemporaryDirectory (0700) is made inside
    return shm if shm.is_dir() else tmp


async def rfc2136(sizes: Sizes, tmp: Path) -> list[Row]:
    """Upserts through the sidecar (changed, then unchanged), and a sweep's listing."""
    rows: list[Row] = []
    where = _tmpfs(tmp)
    with tempfile.TemporaryDirectory(prefix="dns-sidecar-bench-bind-", dir=where) as directory:
        bind = BindServer(Path(directory), zones=(ZONE, SWEPT))
        _seed(Path(directory), sizes.sweep)
        bind.start()
        try:
            table = tmp / "rfc2136.yaml"
            table.write_text(_table(bind))
            env = {"HMAC_SECRET": presigned.SECRET.decode()}
            count = sizes.cf_ops
            with processes.sidecar("--config", str(table), env=env) as sc:
                for label in ("changed (created)", "unchanged"):
                    result, delta = await _counted(
                        bind, load.run(sc.url, presigned.upsert, count, 1, ok=lambda s: s < 400)
                    )
                    assert result.errors == 0, f"{result.errors} failed upserts"
                    changed = label.startswith("changed")
                    rows.append(
                        Row(
                            "8 rfc2136",
                            f"upsert {label} c=1" + (", BIND on tmpfs" if where != tmp else ""),
                            f"{_rps(result)}, p50 {_ms(result.p50)}, p99 {_ms(result.p99)}",
                            target="p50 <= 5 ms" if changed else "",
                            met=_met(result.p50 <= 5) if changed else "",
                        )
                    )
                    want = (1, 1) if changed else (1, 0)
                    got = (delta["QUERY"] / count, delta["UPDATE"] / count)
                    rows.append(
                        Row(
                            "8 rfc2136",
                            f"DNS messages per upsert, {label}",
                            _per(delta, count),
                            target=f"{want[0]} query + {want[1]} UPDATE",
                            met=_met(got == want),
                        )
                    )
            rows.append(await _sweep(bind, sizes.sweep))
        finally:
            bind.stop()
    return rows


async def _sweep(bind: BindServer, records: int) -> Row:
    key = TsigKey(KEY_NAME, "hmac-sha256", bind.secret)
    server = DnsServer("home", bind.address, lambda: key, timeout=10.0)
    locks = LocalCoordination(ReplayCache(10), SystemClock()).locks
    provider = Rfc2136Provider(server, locks=locks)
    started = time.perf_counter()
    listed, delta = await _counted(bind, provider.held(ZonePolicy(name=SWEPT)))
    seconds = time.perf_counter() - started
    ours = sum(1 for held in listed if held.ours)
    return Row(
        "8 rfc2136",
        f"sweep listing, {records}-record zone",
        f"{delta['AXFR']} AXFR, {delta['QUERY'] - delta['AXFR']} other queries, {ours} sets ours, "
        f"{seconds * 1000:.0f} ms",
        target="1 AXFR",
        met=_met(delta["AXFR"] == 1 and ours == records),
    )


def run(sizes: Sizes, tmp: Path) -> list[Row]:
    return asyncio.run(rfc2136(sizes, tmp))
