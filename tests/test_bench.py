"""The benchmark suite in its quick mode: it must keep working (no timing is asserted here)."""

from __future__ import annotations

import subprocess
import sys

from tests.service import REPO, clean_env


def test_quick_benchmark_runs_every_scenario() -> None:
    """`python -m bench --quick` runs the five scenarios and prints one row per measure."""
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--quick"],
        cwd=REPO,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ")]
    scenarios = {row.split("|")[1].strip() for row in rows[1:]}
    assert scenarios == {"1 memory", "2 cloudflare", "3 sweep", "4 memory", "5 reload"}
    assert len(rows) == 17  # the header and 16 measures
