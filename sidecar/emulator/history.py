"""Every state a record set passes through, for tests and soaks: a bounded log per write.

Each write (create, update, delete, or a whole batch, which is one transaction) appends, for
every (name, type) it touched, the record set left there: its sorted contents, a sequence
number and the time. A batch adds its states once, after it applied, never a half state; a
batch that failed adds nothing. The log keeps the newest ``limit`` entries and counts what it
dropped, so a reader polling with ``since`` knows whether it missed any. Shown at
``GET /__emulator/history?since=SEQ``.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, TypedDict

if TYPE_CHECKING:
    from sidecar.emulator.state import Zone

DEFAULT_LIMIT = 100_000


class HistoryEntry(TypedDict):
    seq: int
    time: float  # Unix time the state began
    zone: str
    name: str
    type: str
    values: list[str]  # sorted contents; empty: nothing left at (name, type)


class HistoryPage(TypedDict):
    entries: list[HistoryEntry]
    next: int  # pass as ``since`` to get only later entries
    dropped: int  # entries past the limit, gone for good
    limit: int


class History:
    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        self.limit = limit
        self.seq = 0
        self.dropped = 0
        self._entries: deque[HistoryEntry] = deque()

    def __len__(self) -> int:
        return len(self._entries)

    def record(self, zone: Zone, keys: Iterable[tuple[str, str]]) -> None:
        """The states now at ``keys`` (name, type) in ``zone``, one entry each."""
        now = time.time()
        for name, kind in sorted(keys):
            self.seq += 1
            values = sorted(r["content"] for r in zone.named(name) if r["type"] == kind)
            self._entries.append(
                {
                    "seq": self.seq,
                    "time": now,
                    "zone": zone.name,
                    "name": name,
                    "type": kind,
                    "values": values,
                }
            )
            if len(self._entries) > self.limit:
                self._entries.popleft()
                self.dropped += 1

    def page(self, since: int = 0) -> HistoryPage:
        """The entries after sequence number ``since``, oldest first."""
        entries = [e for e in self._entries if e["seq"] > since]
        return {"entries": entries, "next": self.seq, "dropped": self.dropped, "limit": self.limit}
