"""A zone as a transfer (AXFR) gave it, read as the record sets a sweep compares: each set with
the owner its companion TXT record names (``companion``)."""

from __future__ import annotations

import dns.rdataset
import dns.rdatatype
import dns.zone

from sidecar.errors import InvalidRecord
from sidecar.providers.base import HeldSet, ZonePolicy
from sidecar.providers.ownership import read
from sidecar.providers.rfc2136.companion import companion_name, is_companion
from sidecar.providers.rfc2136.rdata import value_of, values_of
from sidecar.records.values import SUPPORTED_TYPES


def held_sets(copy: dns.zone.Zone, zone: ZonePolicy) -> list[HeldSet]:
    """Every set of the types the sidecar writes, with its mark (``None``: no companion with a
    dns-sidecar marker, so its values are foreign); the SOA, the apex NS (the server's own),
    the companions themselves and DNSSEC data are left out."""
    apex = copy.origin.to_text(omit_final_dot=True) if copy.origin else zone.name
    texts: dict[str, str | None] = {}
    sets: list[tuple[str, str, dns.rdataset.Rdataset]] = []
    for name, node in copy.nodes.items():
        fqdn = name.to_text(omit_final_dot=True).lower()
        for rdataset in node.rdatasets:
            kind = dns.rdatatype.to_text(rdataset.rdtype)
            if is_companion(name):
                if rdataset.rdtype == dns.rdatatype.TXT:
                    only = [value_of("TXT", rd) for rd in rdataset]
                    texts[fqdn] = only[0] if len(only) == 1 else None
            elif kind in SUPPORTED_TYPES and not (fqdn == apex and kind == "NS"):
                sets.append((kind, fqdn, rdataset))
    found = []
    for kind, fqdn, rdataset in sets:
        values = _listed_values(kind, rdataset)
        mark = read(texts.get(companion_name(fqdn, kind, apex)), zone.comment)
        if mark is None:
            found.append(HeldSet(kind, fqdn, (), rdataset.ttl, None, values))
        else:
            found.append(HeldSet(kind, fqdn, values, rdataset.ttl, mark))
    return found


def _listed_values(kind: str, rdataset: dns.rdataset.Rdataset) -> tuple[str, ...]:
    """The values of a listed set in canonical form; data the sidecar would not write (a TXT
    with control characters, say) as the server spells it."""
    try:
        return values_of(kind, rdataset)
    except InvalidRecord:
        return tuple(sorted(value_of(kind, rd) for rd in rdataset))
