"""The in-memory provider: the embedded default, and the twin the tests and demos run on.

Same semantics as the Cloudflare provider (ownership aside, since nobody else writes here):
record sets keyed by (FQDN, type), a CNAME cannot share its name with other records, and an
unchanged upsert writes nothing. With ``snapshot`` set, every change is persisted as a JSON
file written atomically (temporary file, fsync, rename), and loaded again at start.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from sidecar.errors import ProviderUnavailable, RecordConflict, SidecarError
from sidecar.providers.base import DeleteResult, Health, Outcome, UpsertResult, ZonePolicy
from sidecar.records import RecordKey, RecordSet

log = logging.getLogger(__name__)

SNAPSHOT_VERSION = 1

# fqdn -> type -> record set
_Store = dict[str, dict[str, RecordSet]]


class MemoryProvider:
    """Record sets in a dict, optionally persisted to a snapshot file."""

    kind = "memory"

    def __init__(self, *, snapshot: Path | None = None) -> None:
        self._snapshot = snapshot
        self._records: _Store = {}
        self._write_lock = asyncio.Lock()
        if snapshot is not None and snapshot.exists():
            self._records = _load(snapshot)

    async def upsert(self, zone: ZonePolicy, record: RecordSet) -> UpsertResult:
        at_name = self._records.get(record.key.fqdn, {})
        blocking = _cname_conflict(record.key.type, at_name)
        if blocking:
            raise RecordConflict(
                f"{record.key.fqdn} already has {blocking} records; a CNAME cannot share its "
                "name with other records.",
                details={"fqdn": record.key.fqdn, "existing": blocking},
            )
        current = at_name.get(record.key.type)
        if current is not None and current.same_content(record):
            return UpsertResult(Outcome.UNCHANGED, current)
        await self._commit(record.key, record)
        return UpsertResult(Outcome.CREATED if current is None else Outcome.UPDATED, record)

    async def get(self, zone: ZonePolicy, key: RecordKey) -> RecordSet | None:
        stored = self._records.get(key.fqdn, {}).get(key.type)
        if stored is None:
            return None
        # The caller may spell the name differently (domain/subdomain split); answer in theirs.
        return RecordSet(key, stored.values, stored.ttl)

    async def delete(self, zone: ZonePolicy, key: RecordKey) -> DeleteResult:
        removed = self._records.get(key.fqdn, {}).get(key.type)
        if removed is None:
            return DeleteResult(removed=0)
        await self._commit(key, None)
        return DeleteResult(removed=len(removed.values))

    async def health(self) -> Health:
        return Health(healthy=True, message="in-memory provider")

    def status(self) -> dict[str, Any]:
        return {
            "recordSets": sum(len(types) for types in self._records.values()),
            "snapshot": str(self._snapshot) if self._snapshot else None,
        }

    async def aclose(self) -> None:
        async with self._write_lock:
            pass  # let a snapshot write in progress finish

    def dump(self) -> dict[str, dict[str, tuple[tuple[str, ...], int]]]:
        """Everything stored, as plain data (tests compare it before and after a request)."""
        return {
            fqdn: {kind: (rs.values, rs.ttl) for kind, rs in sorted(types.items())}
            for fqdn, types in sorted(self._records.items())
        }

    def _set(self, key: RecordKey, record: RecordSet | None) -> None:
        at_name = self._records.setdefault(key.fqdn, {})
        if record is None:
            at_name.pop(key.type, None)
        else:
            at_name[key.type] = record
        if not at_name:
            del self._records[key.fqdn]

    async def _commit(self, key: RecordKey, record: RecordSet | None) -> None:
        """Apply one change; with a snapshot, undo it again if it cannot be persisted."""
        before = self._records.get(key.fqdn, {}).get(key.type)
        self._set(key, record)
        if self._snapshot is None:
            return
        async with self._write_lock:
            payload = _encode(self._records)
            try:
                await asyncio.to_thread(_atomic_write, self._snapshot, payload)
            except OSError as err:
                if self._records.get(key.fqdn, {}).get(key.type) is record:
                    self._set(key, before)
                raise ProviderUnavailable(
                    f"The memory provider could not write its snapshot {self._snapshot}: "
                    f"{err.strerror or err}.",
                ) from err


def _cname_conflict(kind: str, at_name: dict[str, RecordSet]) -> str:
    others = sorted(t for t in at_name if t != kind)
    if kind == "CNAME" and others:
        return ", ".join(others)
    if kind != "CNAME" and "CNAME" in at_name:
        return "CNAME"
    return ""


def _encode(records: _Store) -> bytes:
    rows = [
        {
            "type": rs.key.type,
            "domain": rs.key.name.domain,
            "subdomain": rs.key.name.subdomain,
            "values": list(rs.values),
            "ttl": rs.ttl,
        }
        for types in records.values()
        for rs in types.values()
    ]
    return json.dumps({"version": SNAPSHOT_VERSION, "records": rows}, indent=1).encode()


def _load(path: Path) -> _Store:
    store: _Store = {}
    try:
        rows = json.loads(path.read_bytes())["records"]
        for row in rows:
            key = RecordKey.parse(row["type"], row["domain"], row["subdomain"])
            record = RecordSet.build(key, row["values"], row["ttl"])
            store.setdefault(key.fqdn, {})[key.type] = record
    except (OSError, ValueError, KeyError, TypeError, SidecarError) as err:
        raise ValueError(
            f"the memory provider's snapshot {path} cannot be read ({err}); fix or remove it"
        ) from err
    log.info("memory provider loaded %d record sets from %s", len(rows), path)
    return store


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
