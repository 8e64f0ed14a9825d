"""From a DNSRecord as the API server sends it to a :class:`WantedRecord`, keeping only what the
sidecar needs (so 10 000 of them fit in a few MiB): names interned, status and the rest dropped.

The object comes as stored, so each part is checked to be what its type says before it is used
(an admission webhook may be missing or older); a DNSRecord that cannot be read is reported by
:class:`Unreadable`, never guessed at.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import cast

from sidecar.credentials.objects import DNSRecord, DNSRecordMetadata, DNSRecordSpec
from sidecar.dnsrecords.wanted import RecordMetadata, WantedRecord
from sidecar.errors import InvalidRecord
from sidecar.records import RecordKey

_NO_METADATA = RecordMetadata()
MAX_SHARED = 1024  # distinct metadata kept to share (bounded: metadata is user input)
_SHARED: dict[tuple[int | None, ...], RecordMetadata] = {(None, None, None): _NO_METADATA}


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A DNSRecord of a served class that names no valid record: why."""

    namespace: str
    name: str
    dns_class: str
    reason: str


def where(obj: DNSRecord) -> tuple[str, str]:
    """The object's namespace and name."""
    metadata = obj.get("metadata") or {}
    return str(metadata.get("namespace") or ""), str(metadata.get("name") or "")


def dns_class_of(obj: DNSRecord) -> str | None:
    """``spec.dnsClassRef.name``, when it is a string."""
    spec: object = obj.get("spec")
    if not isinstance(spec, dict):
        return None
    ref: object = spec.get("dnsClassRef")
    name: object = ref.get("name") if isinstance(ref, dict) else None
    return name if isinstance(name, str) else None


def parse(obj: DNSRecord) -> WantedRecord | Unreadable | None:
    """What ``obj`` wants; ``None`` when it names no DNSClass (not for anyone)."""
    dns_class = dns_class_of(obj)
    if dns_class is None:
        return None
    namespace, name = where(obj)
    spec = cast("DNSRecordSpec", obj.get("spec"))
    try:
        kind, domain, subdomain = (_text(spec, part) for part in ("type", "domain", "subdomain"))
        key = RecordKey.build(kind, domain, subdomain)
    except (InvalidRecord, ValueError) as err:
        message = err.message if isinstance(err, InvalidRecord) else str(err)
        return Unreadable(namespace, name, dns_class, message)
    values: object = spec.get("values")
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        return Unreadable(namespace, name, dns_class, "spec.values is not a list of strings.")
    ttl: object = spec.get("ttl")
    return WantedRecord(
        namespace=sys.intern(namespace),
        name=name,
        dns_class=sys.intern(dns_class),
        key=key,
        values=tuple(values),
        ttl=ttl if isinstance(ttl, int) and not isinstance(ttl, bool) else None,
        metadata=_metadata(spec.get("metadata")),
    )


def _text(spec: DNSRecordSpec, part: str) -> str:
    found: object = spec.get(part)
    if not isinstance(found, str):
        raise ValueError(f"spec.{part} is missing or not a string.")
    return found


def _metadata(raw: object) -> RecordMetadata:
    if not isinstance(raw, dict):
        return _NO_METADATA
    found = cast("DNSRecordMetadata", raw)
    numbers = tuple(_number(found.get(part)) for part in ("priority", "weight", "port"))
    # one object per distinct metadata: a zone's MX records mostly share a priority
    shared = _SHARED.get(numbers)
    if shared is None:
        shared = RecordMetadata(*numbers)
        if len(_SHARED) < MAX_SHARED:
            _SHARED[numbers] = shared
    return shared


def _number(raw: object) -> int | None:
    return raw if isinstance(raw, int) and not isinstance(raw, bool) else None
