"""``python -m bench.compare REV [--rounds N] [--count N]``: the sidecar at git revision ``REV``
(or in the directory ``REV``) against the working tree, beside the bare aiohttp handler, in
the same run.

Scenario 1's mix (signed 50/50 upsert/GET, c=64, wrk) in alternating rounds: bare, ``REV``,
the working tree, bare, ... Each ratio is taken round by round (the runs next to each other),
then its median: on a shared machine the absolute figures drift within seconds, the ratios
much less. For "what did this change cost"; ``make bench`` stays the reference.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import tarfile
import tempfile
from pathlib import Path

from bench import presigned, processes, wrk

NAMES = ("bare", "before", "after")


def export(rev: str, into: Path) -> Path:
    """The tree of ``rev`` (``git archive``), unpacked under ``into``."""
    archive = into / "tree.tar"
    with archive.open("wb") as out:
        subprocess.run(["git", "archive", rev], cwd=processes.REPO, stdout=out, check=True)  # noqa: S607 - git from PATH
    tree = into / "tree"
    with tarfile.open(archive) as tar:
        tar.extractall(tree, filter="data")
    return tree


def compare(rev: str, rounds: int, count: int) -> dict[str, list[wrk.Run]]:
    env = {"HMAC_SECRET": presigned.SECRET.decode()}
    results: dict[str, list[wrk.Run]] = {name: [] for name in NAMES}
    with (
        tempfile.TemporaryDirectory(prefix="dns-sidecar-compare-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        before_tree = Path(rev) if Path(rev).is_dir() else export(rev, Path(tmp))
        procs = {
            "bare": stack.enter_context(processes.bare()),
            "before": stack.enter_context(processes.sidecar(env=env, source=before_tree)),
            "after": stack.enter_context(processes.sidecar(env=env)),
        }
        for name in ("before", "after"):
            proc = procs[name]
            seed = Path(tmp) / f"seed-{name}.req"
            host = f"127.0.0.1:{proc.port}"
            presigned.write(seed, presigned.upsert, presigned.NAMES, host, run=f"seed-{name}")
            wrk.run(proc.url, seed, 8, proc.pid)  # also the warm-up
        for round_ in range(rounds):
            for name in NAMES:
                proc = procs[name]
                requests = Path(tmp) / f"{name}.req"
                host = f"127.0.0.1:{proc.port}"
                presigned.write(requests, presigned.mix, count, host, run=f"{name}-{round_}")
                result = wrk.run(proc.url, requests, 64, proc.pid)
                assert result.errors == 0, f"{name}: {result.errors} failed requests"
                results[name].append(result)
                print(
                    f"round {round_ + 1} {name:6} {result.rps:8,.0f} req/s "
                    f"{result.cpu_us:6.0f} us CPU/request"
                )
    return results


def ratios(results: dict[str, list[wrk.Run]]) -> list[str]:
    bare = results["bare"]
    lines = []
    for name in ("before", "after"):
        runs = results[name]
        rps = statistics.median(a.rps / b.rps for a, b in zip(runs, bare, strict=True))
        cpu = statistics.median(a.cpu_us / b.cpu_us for a, b in zip(runs, bare, strict=True))
        lines.append(f"{name:6} {rps:.2f}x bare req/s, {cpu:.2f}x bare CPU per request")
    pairs = zip(results["after"], results["before"], strict=True)
    change = statistics.median(a.cpu_us / b.cpu_us for a, b in pairs)
    lines.append(f"after / before: {change:.3f}x CPU per request")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__)
    parser.add_argument("rev", help="the git revision to compare the working tree with")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--count", type=int, default=6000, help="requests per run")
    args = parser.parse_args()
    for line in ratios(compare(args.rev, args.rounds, args.count)):
        print(line)


if __name__ == "__main__":
    main()
