"""The benchmarks in their quick mode: they must keep working (no timing is asserted here)."""

from __future__ import annotations

import subprocess
import sys

from tests.service import REPO, clean_env


def quick_rows(module: str) -> list[str]:
    """Run ``python -m MODULE --quick``; the first cell of each table row it prints."""
    result = subprocess.run(
        [sys.executable, "-m", module, "--quick"],
        cwd=REPO,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return [line.split("|")[1].strip() for line in result.stdout.splitlines() if line[:2] == "| "]


def test_quick_benchmark_runs_every_scenario() -> None:
    """`python -m bench --quick` runs every scenario and prints one row per measure."""
    rows = quick_rows("bench")
    assert set(rows[1:]) == {
        "1 memory",
        "2 cloudflare",
        "3 sweep",
        "4 memory",
        "5 reload",
        "6 bare MX",
        "8 rfc2136",
    }
    assert len(rows) == 25  # the header and 24 measures


def test_quick_redis_overhead_benchmark_runs() -> None:
    """`python -m bench.redis_overhead --quick` measures both configurations."""
    assert quick_rows("bench.redis_overhead") == ["configuration", "without Redis", "with Redis"]


def test_quick_dnsrecord_sweep_benchmark_runs() -> None:
    """`python -m bench.dnsrecord_sweep --quick` sweeps 4 zones in one listing each."""
    rows = quick_rows("bench.dnsrecord_sweep")
    assert rows == ["scenario", "7 dnsrecord sweep", "7 dnsrecord sweep", "7 dnsrecord sweep"]
