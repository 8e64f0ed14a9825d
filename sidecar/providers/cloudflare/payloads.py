"""Cloudflare's v4 API payloads as this provider reads and writes them (plain JSON).

``TypedDict``s, so ``mypy --strict`` checks each key at the boundary; the SDK's own models are
not used (see ``client``: parsing them costs more than the call). Keys Cloudflare may leave out
are optional (``total=False``); only the keys this provider reads or writes are listed.
"""

from __future__ import annotations

from typing import Any, TypedDict


class RecordData(TypedDict, total=False):
    """Structured ``data``: SRV (priority, weight, port, target) and CAA (flags, tag, value)."""

    priority: int
    weight: int
    port: int
    target: str
    flags: int
    tag: str
    value: str


class RecordFields(TypedDict, total=False):
    """Where a record's value goes: ``content``, plus ``priority`` (MX) or ``data`` (SRV, CAA)."""

    content: str
    priority: int
    data: RecordData


class RecordBody(RecordFields, total=False):
    """A record to write: a ``posts`` item of a batch, and the base of a ``patches`` item."""

    type: str
    name: str
    ttl: int
    proxied: bool
    comment: str


class RecordPatch(RecordBody, total=False):
    """A ``patches`` item: the record's ``id`` and the fields that change."""

    id: str


class RecordId(TypedDict):
    """A ``deletes`` item."""

    id: str


class ApiRecord(TypedDict, total=False):
    """A DNS record as listed. The SDK's transport may give numbers as floats (``10.0``)."""

    id: str
    type: str
    name: str
    content: str
    priority: float
    data: RecordData
    ttl: float
    proxied: bool
    comment: str | None


class ApiZone(TypedDict, total=False):
    id: str
    name: str
    status: str


class ApiMessage(TypedDict, total=False):
    code: int
    message: str


class ResultInfo(TypedDict, total=False):
    """A page's ``result_info``: which page, and how many there are (any may be missing)."""

    page: int
    per_page: int
    count: int
    total_count: int
    total_pages: int


class Envelope(TypedDict, total=False):
    """Every answer: ``result`` is a record, a zone, a list of them, or a batch's result."""

    success: bool
    errors: list[ApiMessage]
    messages: list[ApiMessage]
    result: Any
    result_info: ResultInfo
