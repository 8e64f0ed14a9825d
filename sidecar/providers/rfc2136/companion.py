"""Where the ownership marker of a record set lives on a DNS server: a companion TXT record.

DNS has no comments, so the marker (``Owner.marker``, as Cloudflare keeps in each record's
comment) goes into a TXT record of its own, one per (name, type), named beside the set:

- ``www.example.com`` A     -> ``_dns-sidecar-a-www.example.com`` TXT
- ``*.apps.example.com`` A  -> ``_dns-sidecar-a-*.apps.example.com`` TXT
- ``example.com`` MX (apex) -> ``_dns-sidecar-mx.example.com`` TXT

A sibling of the name (its leftmost label prefixed), not a child and not the name itself:

- not the name itself: a CNAME allows no other data beside it, and a TXT there would be
  mixed with the user's own TXT values;
- not a child (``_dns-sidecar.a.www.example.com``): a child creates empty non-terminals below
  the name, which stop a wildcard ``*.www.example.com`` from answering ``a.www.example.com``,
  and a child of an NS delegation is below the zone cut, not in the zone at all;
- a sibling has the same parent as the name, so it creates no node the name does not already
  create. A ``*`` inside a longer label is an ordinary character, not a wildcard (RFC 4592).

A leftmost label too long for the prefix (the limit is 63 bytes) is replaced by the first 16
hex digits of its SHA-256 after a double hyphen, which no host-name label contains (a label
may not start with a hyphen). Names starting ``_dns-sidecar-`` are the sidecar's.
"""

from __future__ import annotations

import hashlib

import dns.name

PREFIX = "_dns-sidecar-"
MAX_LABEL = 63


def companion_name(fqdn: str, kind: str, zone: str) -> str:
    """The companion TXT record's name for the set (``fqdn``, ``kind``) in ``zone``."""
    prefix = PREFIX + kind.lower()
    if fqdn == zone:
        return f"{prefix}.{zone}"
    first, _, rest = fqdn.partition(".")
    label = f"{prefix}-{first}"
    if len(label.encode()) > MAX_LABEL:
        label = f"{prefix}--{hashlib.sha256(first.encode()).hexdigest()[:16]}"
    return f"{label}.{rest}"


def is_companion(name: dns.name.Name) -> bool:
    """Whether a name read from the zone (a transfer) is a companion, not a record set."""
    return bool(name.labels) and name.labels[0].startswith(PREFIX.encode())
