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
        "7 https",
        "8 rfc2136",
    }
    assert len(rows) == 29  # the header and 28 measures


def test_quick_redis_overhead_benchmark_runs() -> None:
    """`python -m bench.redis_overhead --quick` measures both configurations."""
    assert quick_rows("bench.redis_overhead") == ["configuration", "without Redis", "with Redis"]


def test_quick_dnsrecord_sweep_benchmark_runs() -> None:
    """`python -m bench.dnsrecord_sweep --quick` sweeps 4 zones in one listing each."""
    rows = quick_rows("bench.dnsrecord_sweep")
    assert rows == ["scenario", "7 dnsrecord sweep", "7 dnsrecord sweep", "7 dnsrecord sweep"]


def test_compare_runs_a_tree_against_the_working_tree() -> None:
    """`python -m bench.compare DIR --rounds 1`: one round of each, then both ratios and the
    change (here the working tree against itself)."""
    result = subprocess.run(
        [sys.executable, "-m", "bench.compare", str(REPO), "--rounds", "1", "--count", "100"],
        cwd=REPO,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    lines = result.stdout.splitlines()
    assert [line.split()[:3] for line in lines[:3]] == [
        ["round", "1", name] for name in ("bare", "before", "after")
    ]
    assert [line.split(" ", 1)[0] for line in lines[3:]] == ["before", "after", "after"]
