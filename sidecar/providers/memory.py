"""The in-memory provider: the embedded default, and the twin the tests and demos run on.

Same semantics as the Cloudflare provider: record sets keyed by (FQDN, type), a CNAME cannot
share its name with other records, an unchanged upsert writes nothing, and writes to one name
are serialised (read, compare, write as one step, as on Cloudflare), so two concurrent upserts of
a new set are one "created" and one "updated" or "unchanged". There is no comment field, so each
set keeps its ownership marker beside it (``providers.ownership``): under ``strict`` a set
another DNSClass or deployment wrote is not changed (409) nor deleted (left in place), and a set
from before owners (no marker kept: an older snapshot) is ours, rewritten with the marker by its
next upsert. With ``snapshot`` set, every change is persisted as a JSON
file written atomically (temporary file, fsync, rename), and loaded again at start; temporary
files that a killed process left behind are removed then. While the snapshot cannot be written,
changes are refused and ``health`` says so (and tries again). An account edited by a reload
takes the records of the provider it replaces (``carry_over``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sidecar.coordination.locks import KeyedLocks
from sidecar.errors import ProviderUnavailable, RecordConflict, SidecarError
from sidecar.providers.base import (
    ROOT,
    DeleteResult,
    Health,
    HeldSet,
    Outcome,
    Ownership,
    UpsertResult,
    ZonePolicy,
)
from sidecar.providers.ownership import Mark, read
from sidecar.records import RecordKey, RecordSet
from sidecar.records.names import is_within

log = logging.getLogger(__name__)

SNAPSHOT_VERSION = 2  # 2: each set with its marker; 1 (before owners): none, read as legacy


@dataclass(frozen=True, slots=True)
class _Kept:
    """A record set and the ownership marker written with it (None: from before owners)."""

    record: RecordSet
    marker: str | None

    def mark(self, zone: ZonePolicy) -> Mark | None:
        return Mark() if self.marker is None else read(self.marker, zone.comment)

    def made_by(self, zone: ZonePolicy) -> bool:
        """``zone.owner`` wrote it (its own marker; never the one from before owners)."""
        mark = self.mark(zone)
        return mark is not None and mark.made_by(zone.owner)

    def writable(self, zone: ZonePolicy) -> bool:
        if zone.ownership is not Ownership.STRICT:
            return True
        mark = self.mark(zone)
        return mark is not None and mark.writable_by(zone.owner)


# fqdn -> type -> record set and marker
_Store = dict[str, dict[str, _Kept]]


class MemoryProvider:
    """Record sets in a dict, optionally persisted to a snapshot file."""

    kind = "memory"

    def __init__(self, *, snapshot: Path | None = None) -> None:
        self._snapshot = snapshot
        self._records: _Store = {}
        self._write_lock = asyncio.Lock()  # one snapshot write at a time
        self._names = KeyedLocks()  # one change per name at a time (a CNAME excludes others)
        self._write_error: str | None = None  # why the last snapshot write failed
        self._written = False  # a snapshot write succeeded (health tries one until then)
        if snapshot is not None:
            _remove_leftovers(snapshot)
            if snapshot.exists():
                self._records = _load(snapshot)

    def carry_over(self, previous: MemoryProvider) -> str:
        """Take the records of the provider this one replaces (a reload edited the account);
        with a snapshot, write them to it at once. Says what happened, for the log.

        The records held in memory are the live state: they win over what this provider
        loaded from its snapshot file. An empty predecessor leaves the file's records.
        """
        held = sum(len(types) for types in previous._records.values())
        if not held:
            loaded = sum(len(types) for types in self._records.values())
            return f"kept the {loaded} record set(s) loaded from its snapshot (none in memory)"
        replaced = sum(len(types) for types in self._records.values())
        self._records = {fqdn: dict(types) for fqdn, types in previous._records.items()}
        if self._snapshot is None:
            return f"carried {held} record set(s) over, in memory only"
        try:
            _atomic_write(self._snapshot, _encode(self._records))
            self._written = True
        except OSError as err:
            self._write_error = str(err.strerror or err)
            return (
                f"carried {held} record set(s) over, but could not write them to "
                f"{self._snapshot}: {self._write_error}"
            )
        instead = f", in place of the {replaced} the file held" if replaced else ""
        return f"carried {held} record set(s) over and wrote them to {self._snapshot}{instead}"

    async def upsert(self, zone: ZonePolicy, record: RecordSet) -> UpsertResult:
        if self._snapshot is None:  # nothing to wait for: the change is one step of the loop
            return await self._upsert(zone, record)
        async with self._names.hold(record.key.fqdn):  # read, compare, write while it persists
            return await self._upsert(zone, record)

    async def _upsert(self, zone: ZonePolicy, record: RecordSet) -> UpsertResult:
        at_name = self._records.get(record.key.fqdn, {})
        blocking = _cname_conflict(record.key.type, at_name)
        if blocking:
            raise RecordConflict(
                f"{record.key.fqdn} already has {blocking} records; a CNAME cannot share its "
                "name with other records.",
                details={"fqdn": record.key.fqdn, "existing": blocking},
            )
        current = at_name.get(record.key.type)
        if current is not None and not current.writable(zone):
            raise _not_ours(record.key, current, zone)
        marker = zone.owner.marker(zone.comment)
        if current is not None and zone.ownership is Ownership.OFF:
            marker = current.marker or marker  # no marker checks: who wrote it stays written
        if current is not None and current.record.same_content(record):
            if current.marker == marker:
                return UpsertResult(Outcome.UNCHANGED, current.record)
            await self._commit(record.key, _Kept(current.record, marker))  # the marker moves over
            return UpsertResult(Outcome.UPDATED, current.record)
        await self._commit(record.key, _Kept(record, marker))
        return UpsertResult(Outcome.CREATED if current is None else Outcome.UPDATED, record)

    async def get(self, zone: ZonePolicy, key: RecordKey) -> RecordSet | None:
        stored = self._records.get(key.fqdn, {}).get(key.type)
        if stored is None:
            return None
        # The caller may spell the name differently (domain/subdomain split); answer in theirs.
        return RecordSet(key, stored.record.values, stored.record.ttl)

    async def delete(self, zone: ZonePolicy, key: RecordKey) -> DeleteResult:
        async with self._names.hold(key.fqdn):
            return await self._delete(key, lambda kept: kept.writable(zone))

    async def prune(self, zone: ZonePolicy, key: RecordKey) -> DeleteResult:
        async with self._names.hold(key.fqdn):
            return await self._delete(key, lambda kept: kept.made_by(zone))

    async def _delete(self, key: RecordKey, ours: Callable[[_Kept], bool]) -> DeleteResult:
        removed = self._records.get(key.fqdn, {}).get(key.type)
        if removed is None:
            return DeleteResult(removed=0)
        if not ours(removed):
            return DeleteResult(
                removed=0, left=tuple(f"{key.type} {v}" for v in removed.record.values)
            )
        await self._commit(key, None)
        return DeleteResult(removed=len(removed.record.values))

    async def held(self, zone: ZonePolicy) -> list[HeldSet]:
        found = []
        for fqdn, types in self._records.items():
            if zone.name != ROOT and not is_within(fqdn, zone.name):
                continue
            for kind, kept in types.items():
                mark = kept.mark(zone)
                values = kept.record.values
                found.append(
                    HeldSet(
                        kind,
                        fqdn,
                        values if mark is not None else (),
                        kept.record.ttl,
                        mark,
                        () if mark is not None else values,
                    )
                )
        return found

    async def health(self) -> Health:
        if self._snapshot is not None and (self._write_error is not None or not self._written):
            async with self._write_lock:  # try (again): a fixed disk makes it healthy
                try:
                    await self._write()
                except OSError:
                    return Health(
                        healthy=False,
                        message=(
                            f"The memory provider cannot write its snapshot {self._snapshot} "
                            f"({self._write_error}); changes are refused until it can."
                        ),
                    )
        return Health(healthy=True, message="in-memory provider")

    def status(self) -> dict[str, Any]:
        return {
            "recordSets": sum(len(types) for types in self._records.values()),
            "snapshot": str(self._snapshot) if self._snapshot else None,
        }

    async def aclose(self) -> None:
        async with self._write_lock:
            pass  # let a snapshot write in progress finish

    def _set(self, key: RecordKey, record: _Kept | None) -> None:
        at_name = self._records.setdefault(key.fqdn, {})
        if record is None:
            at_name.pop(key.type, None)
        else:
            at_name[key.type] = record
        if not at_name:
            del self._records[key.fqdn]

    async def _commit(self, key: RecordKey, record: _Kept | None) -> None:
        """Apply one change; with a snapshot, undo it again if it cannot be persisted."""
        before = self._records.get(key.fqdn, {}).get(key.type)
        self._set(key, record)
        if self._snapshot is None:
            return
        async with self._write_lock:
            try:
                await self._write()
            except OSError as err:
                if self._records.get(key.fqdn, {}).get(key.type) is record:
                    self._set(key, before)
                raise ProviderUnavailable(
                    f"The memory provider could not write its snapshot {self._snapshot}: "
                    f"{err.strerror or err}.",
                ) from err

    async def _write(self) -> None:
        """Write the snapshot (the caller holds the write lock); remember whether it failed."""
        assert self._snapshot is not None
        try:
            await asyncio.to_thread(_atomic_write, self._snapshot, _encode(self._records))
        except OSError as err:
            error = str(err.strerror or err)
            if error != self._write_error:  # once per failure, not once per refused change
                log.warning(
                    "memory provider cannot write its snapshot %s: %s; changes are refused "
                    "until it can",
                    self._snapshot,
                    error,
                )
            self._write_error = error
            raise
        if self._write_error is not None:
            log.info("memory provider writes its snapshot %s again", self._snapshot)
        self._write_error = None
        self._written = True


def _not_ours(key: RecordKey, current: _Kept, zone: ZonePolicy) -> RecordConflict:
    values = list(current.record.values)
    return RecordConflict(
        f"{key.fqdn} has {key.type} records that dns-sidecar did not write for this client "
        f"(marked {current.marker!r}, not {zone.owner.marker(zone.comment)!r}): "
        f"{', '.join(values)}. Remove them through their owner, or set ownership: adopt for "
        "this zone.",
        details={"fqdn": key.fqdn, "foreign": values, "marker": current.marker},
    )


def _cname_conflict(kind: str, at_name: dict[str, _Kept]) -> str:
    if kind != "CNAME":
        return "CNAME" if "CNAME" in at_name else ""
    return ", ".join(sorted(t for t in at_name if t != kind))


def _encode(records: _Store) -> bytes:
    rows = [
        {
            "type": kept.record.key.type,
            "domain": kept.record.key.name.domain,
            "subdomain": kept.record.key.name.subdomain,
            "values": list(kept.record.values),
            "ttl": kept.record.ttl,
            "marker": kept.marker,
        }
        for types in records.values()
        for kept in types.values()
    ]
    return json.dumps({"version": SNAPSHOT_VERSION, "records": rows}, indent=1).encode()


def _load(path: Path) -> _Store:
    store: _Store = {}
    try:
        rows = json.loads(path.read_bytes())["records"]
        for row in rows:
            key = RecordKey.parse(row["type"], row["domain"], row["subdomain"])
            record = RecordSet.build(key, row["values"], row["ttl"])
            marker = row.get("marker")  # absent in a version 1 snapshot: from before owners
            if marker is not None and not isinstance(marker, str):
                raise TypeError(f"marker {marker!r} is not a string")
            store.setdefault(key.fqdn, {})[key.type] = _Kept(record, marker)
    except (OSError, ValueError, KeyError, TypeError, SidecarError) as err:
        raise ValueError(
            f"the memory provider's snapshot {path} cannot be read ({err}); fix or remove it"
        ) from err
    log.info("memory provider loaded %d record sets from %s", len(rows), path)
    return store


def _remove_leftovers(path: Path) -> None:
    """Remove the temporary files of writes that never finished (the process was killed)."""
    pattern = re.compile(re.escape(f".{path.name}.") + r"[a-z0-9_]{8}")  # mkstemp's names
    try:
        found = [p for p in path.parent.iterdir() if pattern.fullmatch(p.name) and p.is_file()]
    except OSError:
        return  # no directory yet: nothing left behind
    for leftover in found:
        leftover.unlink(missing_ok=True)
    if found:
        log.warning(
            "memory provider removed %d unfinished snapshot write(s) next to %s: %s",
            len(found),
            path,
            ", ".join(sorted(p.name for p in found)),
        )


def _atomic_write(path: Path, payload: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
