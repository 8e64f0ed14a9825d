"""Following files that the kubelet replaces: the one file-watching mechanism of the package.

A mounted ConfigMap or Secret is updated by the kubelet swapping a ``..data`` symlink in its
directory, any number of times; watching a file itself would stop working after the first swap,
so its directory is watched, for changes to the file's own name and to ``..data`` only. Events
are debounced; each batch calls ``on_change`` once (which re-reads and decides whether anything
changed). :func:`recheck_files` is the safety net behind the watcher: ``on_change`` every
``interval`` seconds. Users: the routing table (``config.reload``) and the protocol port's
certificate pair (``protocol.tls``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import watchfiles

OnChange = Callable[[], Awaitable[object]]


def watch_filter(*paths: Path) -> Callable[[watchfiles.Change, str], bool]:
    """Changes to the files themselves or to the kubelet's ``..data`` swap; not their
    neighbours (a log file written beside one would otherwise feed the watcher forever)."""
    names = {path.name for path in paths} | {"..data"}
    return lambda change, changed: Path(changed).name in names


async def watch_files(
    paths: Sequence[Path], on_change: OnChange, stop: asyncio.Event, *, debounce_ms: int
) -> None:
    """Call ``on_change`` after every (debounced) change to ``paths`` until ``stop`` is set."""
    logging.getLogger("watchfiles").setLevel(logging.WARNING)  # no line per change seen
    directories = sorted({path.parent for path in paths})
    async for _ in watchfiles.awatch(
        *directories,
        watch_filter=watch_filter(*paths),
        debounce=debounce_ms,
        step=min(50, debounce_ms),
        stop_event=stop,
        recursive=False,
    ):
        await on_change()


async def recheck_files(interval: float, on_change: OnChange, stop: asyncio.Event) -> None:
    """Call ``on_change`` every ``interval`` seconds until ``stop`` is set."""
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), interval)
        except TimeoutError:
            await on_change()
