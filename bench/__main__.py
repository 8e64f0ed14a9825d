"""``python -m bench [--quick] [--out docs/benchmarks.md]``: run every scenario, print one table.

Ratios are against baselines measured in the same run (a bare aiohttp handler, the same
sidecar without its cache, ...), because absolute figures on a shared machine drift.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.scenarios import FULL, QUICK, Row, run_all


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores ({cpu}), "
        f"Python {platform.python_version()}"
    )


def table(rows: list[Row]) -> str:
    head = ["scenario", "measure", "dns-sidecar", "baseline (same run)", "target", ""]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += [
        f"| {r.scenario} | {r.measure} | {r.value} | {r.baseline} | {r.target} | {r.met} |"
        for r in rows
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="tiny counts: keeps the suite working")
    parser.add_argument("--out", type=Path, help="also write the table into this Markdown file")
    args = parser.parse_args()
    started = time.perf_counter()
    rows = asyncio.run(run_all(QUICK if args.quick else FULL))
    text = table(rows)
    print(text)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(
        f"\n{machine()}; {'quick' if args.quick else 'full'} run took "
        f"{time.perf_counter() - started:.0f} s at {stamp}"
    )
    if args.out:
        document = args.out.read_text() if args.out.exists() else ""
        begin, end = "<!-- bench:begin -->", "<!-- bench:end -->"
        block = f"{begin}\n{machine()}, {stamp}:\n\n{text}\n{end}"
        if begin in document:
            document = document.split(begin)[0] + block + document.split(end)[1]
        else:
            document += block + "\n"
        args.out.write_text(document)
    return 0


if __name__ == "__main__":
    sys.exit(main())
