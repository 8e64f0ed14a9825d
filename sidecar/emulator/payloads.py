"""What the emulator stores and answers, shaped as Cloudflare's v4 API shapes them.

``TypedDict``s, so ``mypy --strict`` checks every key written. Request bodies stay plain JSON
(``Mapping[str, Any]``): ``state`` validates them field by field, as Cloudflare does, and builds
a :class:`StoredRecord` from what passes. The emulator stands alone, so these are its own, not
the provider's (``sidecar.providers.cloudflare.payloads``).
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict


class StructuredData(TypedDict, total=False):
    """Structured ``data``: SRV (priority, weight, port, target) or CAA (flags, tag, value)."""

    priority: int
    weight: int
    port: int
    target: str
    flags: int
    tag: str
    value: str


class RecordExtras(TypedDict, total=False):
    """The fields beside ``content`` that some types carry: MX and SRV ``priority``, SRV and CAA
    ``data``."""

    priority: int
    data: StructuredData


class StoredRecord(TypedDict):
    """A DNS record as stored, and as every endpoint answers it."""

    id: str
    zone_id: str
    zone_name: str
    name: str  # the FQDN
    type: str
    content: str
    proxiable: bool
    proxied: bool
    ttl: int
    comment: str | None
    tags: list[str]
    settings: dict[str, Any]
    meta: dict[str, Any]
    created_on: str
    modified_on: str
    priority: NotRequired[int]
    data: NotRequired[StructuredData]


class DeletedRecord(TypedDict):
    id: str


class BatchResult(TypedDict):
    """What a batch answers: the records each list touched, in the order applied."""

    deletes: list[StoredRecord]
    patches: list[StoredRecord]
    puts: list[StoredRecord]
    posts: list[StoredRecord]


class EmulatedAccount(TypedDict):
    id: str
    name: str


class ZoneJson(TypedDict):
    """A zone as listed and as fetched."""

    id: str
    name: str
    status: str
    paused: bool
    type: str
    account: EmulatedAccount
    name_servers: list[str]


class PageInfo(TypedDict):
    page: int
    per_page: int
    count: int
    total_count: int
    total_pages: int


class Message(TypedDict):
    code: int | str  # Cloudflare's are numbers; a fault may inject anything
    message: str


class ApiEnvelope(TypedDict):
    """Every API answer, success or failure."""

    success: bool
    errors: list[Message]
    messages: list[Message]
    result: object
    result_info: NotRequired[PageInfo]
