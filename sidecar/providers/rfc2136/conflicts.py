"""The 409s of the RFC 2136 provider, each saying what is at the name and what to do."""

from __future__ import annotations

import dns.rcode

from sidecar.errors import RecordConflict
from sidecar.providers.base import ZonePolicy
from sidecar.providers.rfc2136.companion import companion_name
from sidecar.records import RecordKey


def in_the_way(key: RecordKey, existing: list[str]) -> RecordConflict:
    return RecordConflict(
        f"Cannot put {key.type} at {key.fqdn}: {', '.join(existing)} already there, and a "
        "CNAME cannot share its name with other records.",
        details={"fqdn": key.fqdn, "existing": existing},
    )


def foreign(key: RecordKey, values: tuple[str, ...], zone: ZonePolicy) -> RecordConflict:
    return RecordConflict(
        f"{key.fqdn} has {key.type} records not managed by dns-sidecar (no companion record "
        f"{companion_name(key.fqdn, key.type, zone.name)} TXT with this deployment's marker): "
        f"{', '.join(values)}. Remove them, or set ownership: adopt for this zone.",
        details={"fqdn": key.fqdn, "foreign": list(values)},
    )


def changed(key: RecordKey, rcode: int, what: str) -> RecordConflict:
    name = dns.rcode.to_text(rcode)  # type: ignore[arg-type]
    if rcode == dns.rcode.YXDOMAIN:
        why = "other records are at the name, and a CNAME cannot share its name with them"
    else:
        why = "the records at the name (or their ownership marker) changed since they were read"
    return RecordConflict(
        f"The DNS server refused the {what} of {key.type} {key.fqdn} ({name}): {why}; nothing "
        "was changed. Look at the name, then try again.",
        details={"fqdn": key.fqdn, "rcode": name},
    )
