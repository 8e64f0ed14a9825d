"""Planning one ``dns_records/batch`` call that turns the records at a name into the desired set.

Records whose value stays are kept (patched only if TTL, proxied or the marker differ); records
whose value goes are reused for new values (patched in place) before anything is created or
deleted, so the name never passes through an empty state even where a batch is not atomic in
propagation. What is left over is deleted (old values) or created (new values).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sidecar.providers.cloudflare.mapping import CloudflareRecord, to_api
from sidecar.providers.cloudflare.payloads import RecordBody, RecordId, RecordPatch


@dataclass
class Plan:
    deletes: list[RecordId] = field(default_factory=list)
    patches: list[RecordPatch] = field(default_factory=list)
    posts: list[RecordBody] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.deletes or self.patches or self.posts)


@dataclass(frozen=True, slots=True)
class Desired:
    kind: str
    name: str
    values: tuple[str, ...]
    ttl: int
    proxied: bool
    comment: str
    mark_existing: bool  # write the marker on records we keep (adopt), or leave them (off)


def plan(existing: Sequence[CloudflareRecord], want: Desired) -> Plan:
    result = Plan()
    keepers: dict[str, CloudflareRecord] = {}
    leftovers: list[CloudflareRecord] = []
    for record in existing:
        if record.value in want.values and record.value not in keepers:
            keepers[record.value] = record
        elif record.value in want.values:
            result.deletes.append({"id": record.id})  # a duplicate of a kept value
        else:
            leftovers.append(record)
    for record in keepers.values():
        changes = _setting_changes(record, want)
        if changes:
            result.patches.append({"id": record.id, "type": want.kind, **changes})
    missing = [value for value in want.values if value not in keepers]
    for record, value in zip(leftovers, missing, strict=False):
        body = to_api(
            want.kind,
            want.name,
            value,
            ttl=want.ttl,
            proxied=want.proxied,
            comment=want.comment
            if want.mark_existing or record.comment == want.comment
            else record.comment,
        )
        result.patches.append({"id": record.id, **body})
    result.deletes += [{"id": record.id} for record in leftovers[len(missing) :]]
    result.posts += [
        to_api(
            want.kind, want.name, value, ttl=want.ttl, proxied=want.proxied, comment=want.comment
        )
        for value in missing[len(leftovers) :]
    ]
    return result


def _setting_changes(record: CloudflareRecord, want: Desired) -> RecordPatch:
    changes: RecordPatch = {}
    if record.ttl != want.ttl:
        changes["ttl"] = want.ttl
    if record.proxied != want.proxied:
        changes["proxied"] = want.proxied
    if want.mark_existing and record.comment != want.comment:
        changes["comment"] = want.comment
    return changes
