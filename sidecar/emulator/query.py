"""Cloudflare's list filters and pagination, as dns-sidecar uses them."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from typing import TypeVar

from sidecar.emulator.payloads import PageInfo, StoredRecord

T = TypeVar("T")


def matches(record: StoredRecord, query: Mapping[str, str]) -> bool:
    """Cloudflare's list filters used by dns-sidecar (match=all)."""
    fields: Mapping[str, object] = record  # the filters name the field to read
    checks: Iterable[tuple[str, str]] = query.items()
    for key, wanted in checks:
        field_name, _, op = key.partition(".")
        if field_name not in ("name", "content", "comment", "type"):
            continue
        if field_name == "type":
            if record["type"] != wanted.upper():
                return False
            continue
        have = fields.get(field_name) or ""
        if not _compare(str(have), wanted, op or "exact", field_name):
            return False
    return True


def _compare(have: str, wanted: str, op: str, field_name: str) -> bool:
    if field_name == "name":
        have, wanted = have.lower(), wanted.lower().rstrip(".")
    if op == "exact":
        return have == wanted
    if op == "contains":
        return wanted in have
    if op == "startswith":
        return have.startswith(wanted)
    if op == "endswith":
        return have.endswith(wanted)
    if op == "present":
        return bool(have)
    if op == "absent":
        return not have
    return True


def paginate(items: list[T], page: int, per_page: int) -> tuple[list[T], PageInfo]:
    total = len(items)
    start = (page - 1) * per_page
    chunk = list(itertools.islice(items, start, start + per_page)) if start < total else []
    return chunk, {
        "page": page,
        "per_page": per_page,
        "count": len(chunk),
        "total_count": total,
        "total_pages": max(1, -(-total // per_page)),
    }
