"""The Redis overhead benchmark in its quick mode: it must keep working (no timing asserted)."""

from __future__ import annotations

import subprocess
import sys

from tests.service import REPO, clean_env


def test_quick_redis_overhead_benchmark_runs() -> None:
    """`python -m bench.redis_overhead --quick` measures both configurations."""
    result = subprocess.run(
        [sys.executable, "-m", "bench.redis_overhead", "--quick"],
        cwd=REPO,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    rows = [line.split("|")[1].strip() for line in result.stdout.splitlines() if line[:2] == "| "]
    assert rows == ["configuration", "without Redis", "with Redis"]
