"""The emulator's state: zones, DNS records and the rules Cloudflare applies to them.

Only the subset of the v4 API that dns-sidecar uses, but with Cloudflare's behaviour: names are
stored as FQDNs (``@`` and relative names accepted on input), one record per value, structured
``data`` for SRV and CAA, ``priority`` for MX, the documented error codes, and batches that
apply deletes, patches, puts, posts in that order, all or nothing.
"""

from __future__ import annotations

import copy
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import idna

from sidecar.emulator import fields
from sidecar.emulator.errors import CloudflareError, invalid
from sidecar.emulator.history import History
from sidecar.emulator.payloads import BatchResult, DeletedRecord, StoredRecord, ZoneJson


@dataclass
class Zone:
    """A zone's records, by id and indexed by name (so each operation costs what it touches,
    not the size of the zone)."""

    id: str
    name: str
    records: dict[str, StoredRecord] = field(default_factory=dict)
    by_name: dict[str, set[str]] = field(default_factory=dict)

    def put(self, record: StoredRecord) -> StoredRecord | None:
        """Store ``record``; returns what it replaced."""
        old = self.records.get(record["id"])
        if old is not None:
            self.by_name[old["name"]].discard(old["id"])
        self.records[record["id"]] = record
        self.by_name.setdefault(record["name"], set()).add(record["id"])
        return old

    def remove(self, record_id: str) -> StoredRecord:
        old = self.records.pop(record_id)
        self.by_name[old["name"]].discard(record_id)
        return old

    def named(self, name: str) -> list[StoredRecord]:
        return [self.records[i] for i in self.by_name.get(name, ())]

    def as_json(self) -> ZoneJson:
        return {
            "id": self.id,
            "name": self.name,
            "status": "active",
            "paused": False,
            "type": "full",
            "account": {"id": "emulated-account", "name": "Emulated account"},
            "name_servers": ["ada.ns.cloudflare.com", "bob.ns.cloudflare.com"],
        }


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _new_id() -> str:
    return secrets.token_hex(16)


class State:
    def __init__(self) -> None:
        self.zones: dict[str, Zone] = {}
        self.history = History()
        self._batch: set[tuple[str, str]] | None = None  # keys a running batch touched

    def _changed(self, zone: Zone, *records: StoredRecord) -> None:
        keys = {(r["name"], r["type"]) for r in records}
        if self._batch is None:
            self.history.record(zone, keys)
        else:
            self._batch |= keys

    def add_zone(self, name: str, zone_id: str | None = None) -> Zone:
        """A new zone; a Unicode name is stored in IDNA (``xn--``) form, as Cloudflare does."""
        zone = Zone(zone_id or _new_id(), _ascii(name.lower().rstrip(".")))
        self.zones[zone.id] = zone
        return zone

    def zone(self, zone_id: str) -> Zone:
        found = self.zones.get(zone_id)
        if found is None:
            raise CloudflareError(404, 7003, "Could not route to /zones/" + zone_id)
        return found

    # --- records ------------------------------------------------------------------------

    def create(self, zone: Zone, body: Mapping[str, Any]) -> StoredRecord:
        record = self._validated(zone, dict(body), existing=None)
        zone.put(record)
        self._changed(zone, record)
        return copy.deepcopy(record)

    def update(
        self, zone: Zone, record_id: str, body: Mapping[str, Any], *, partial: bool
    ) -> StoredRecord:
        current = self._record(zone, record_id)
        merged = {**_input_view(current), **body} if partial else dict(body)
        record = self._validated(zone, merged, existing=current)
        zone.put(record)
        self._changed(zone, current, record)
        return copy.deepcopy(record)

    def delete(self, zone: Zone, record_id: str) -> DeletedRecord:
        self._record(zone, record_id)
        removed = zone.remove(record_id)
        self._changed(zone, removed)
        return {"id": removed["id"]}

    def get(self, zone: Zone, record_id: str) -> StoredRecord:
        return copy.deepcopy(self._record(zone, record_id))

    def batch(self, zone: Zone, body: Mapping[str, Any]) -> BatchResult:
        """Deletes, patches, puts, posts, in that order; on any error nothing is applied."""
        touched = {
            str(item.get("id")): zone.records.get(str(item.get("id")))
            for key in ("deletes", "patches", "puts")
            for item in _items(body, key)
        }
        before = set(zone.records)
        result: BatchResult = {"deletes": [], "patches": [], "puts": [], "posts": []}
        self._batch = set()
        try:
            for item in _items(body, "deletes"):
                result["deletes"].append(self.get(zone, _id_of(item)))
                self.delete(zone, _id_of(item))
            for item in _items(body, "patches"):
                result["patches"].append(self.update(zone, _id_of(item), item, partial=True))
            for item in _items(body, "puts"):
                result["puts"].append(self.update(zone, _id_of(item), item, partial=False))
            for item in _items(body, "posts"):
                result["posts"].append(self.create(zone, item))
        except CloudflareError:
            for record_id in set(zone.records) - before:  # undo the posts
                zone.remove(record_id)
            for old in touched.values():  # and the rest
                if old is not None:
                    zone.put(old)
            raise
        else:
            self.history.record(zone, self._batch)
        finally:
            self._batch = None
        return result

    def _record(self, zone: Zone, record_id: str) -> StoredRecord:
        found = zone.records.get(record_id)
        if found is None:
            raise CloudflareError(404, 81044, "Record does not exist.")
        return found

    def _validated(
        self, zone: Zone, body: dict[str, Any], *, existing: StoredRecord | None
    ) -> StoredRecord:
        kind = str(body.get("type") or "").upper()
        if kind not in fields.SUPPORTED:
            raise invalid(9000, f"DNS record type {body.get('type')!r} is invalid.")
        name = fields.fqdn(str(body.get("name") or ""), zone.name)
        ttl = body.get("ttl", 1)
        if (
            not isinstance(ttl, int)
            or isinstance(ttl, bool)
            or not (ttl == 1 or 60 <= ttl <= 86400)
        ):
            raise invalid(
                9021, "Invalid TTL. Must be between 60 and 86400 seconds, or 1 for Automatic."
            )
        proxied = bool(body.get("proxied", False))
        if proxied and kind not in fields.PROXIABLE:
            raise invalid(9004, "This record type cannot be proxied.")
        comment = body.get("comment")
        if comment is not None and (
            not isinstance(comment, str) or len(comment) > fields.MAX_COMMENT
        ):
            raise invalid(
                9101,
                f"DNS record comment must be a string of at most {fields.MAX_COMMENT} characters.",
            )
        content, extra = fields.content(kind, body)
        now = _now()
        record: StoredRecord = {
            "id": existing["id"] if existing else _new_id(),
            "zone_id": zone.id,
            "zone_name": zone.name,
            "name": name,
            "type": kind,
            "content": content,
            "proxiable": kind in fields.PROXIABLE,
            "proxied": proxied,
            "ttl": 1 if proxied else ttl,
            "comment": comment,
            "tags": list(body.get("tags") or []),
            "settings": {},
            "meta": {},
            "created_on": existing["created_on"] if existing else now,
            "modified_on": now,
            **extra,
        }
        self._check_conflicts(zone, record)
        return record

    def _check_conflicts(self, zone: Zone, record: StoredRecord) -> None:
        for other in zone.named(record["name"]):
            if other["id"] == record["id"]:
                continue
            if "CNAME" in (record["type"], other["type"]) and record["type"] != other["type"]:
                raise invalid(81053, "An A, AAAA, or CNAME record with that host already exists.")
            if record["type"] == "CNAME" and other["type"] == "CNAME":
                raise invalid(81053, "An A, AAAA, or CNAME record with that host already exists.")
            if other["type"] == record["type"] and _same_data(other, record):
                raise invalid(81058, "An identical record already exists.")


def _items(body: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    items = body.get(key) or []
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise invalid(9207, f"Request body is invalid: {key} must be a list of objects.")
    return items


def _id_of(item: Mapping[str, Any]) -> str:
    record_id = item.get("id")
    if not isinstance(record_id, str) or not record_id:
        raise invalid(9207, "Request body is invalid: every batch item needs an id.")
    return record_id


def _input_view(record: StoredRecord) -> dict[str, Any]:
    """The record as a request body would give it (what a PATCH merges into)."""
    view: dict[str, Any] = {
        "type": record["type"],
        "name": record["name"],
        "content": record["content"],
        "ttl": record["ttl"],
        "proxied": record["proxied"],
        "comment": record["comment"],
        "tags": record["tags"],
    }
    if "priority" in record:
        view["priority"] = record["priority"]
    if "data" in record:
        view["data"] = record["data"]
    return view


def _same_data(a: StoredRecord, b: StoredRecord) -> bool:
    return a["content"] == b["content"] and a.get("priority") == b.get("priority")


def _ascii(name: str) -> str:
    if name.isascii():
        return name
    try:
        return idna.encode(name, uts46=True).decode("ascii")
    except idna.IDNAError:
        return name  # the emulator takes what it is given; the sidecar validates names
