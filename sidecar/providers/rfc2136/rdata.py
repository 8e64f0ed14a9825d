"""Record sets in DNS wire form and back: the sidecar's canonical values as dnspython rdata.

Host names in values are absolute on the wire (a trailing dot), TXT text is split into strings
of at most 255 bytes (RFC 1035 character-strings) and joined again on read, and values read
back pass through the same canonical form as requests (``records.values``), so an unchanged
upsert compares equal whatever spelling the server answers in.
"""

from __future__ import annotations

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
from dns.rdtypes.ANY.TXT import TXT

from sidecar.errors import InvalidRecord
from sidecar.records import RecordSet
from sidecar.records.values import canonical_values

MAX_STRING = 255  # bytes in one character-string
_HOSTS = {"CNAME": (0,), "NS": (0,), "MX": (1,), "SRV": (3,)}  # which fields are host names

IN = dns.rdataclass.IN


def txt_strings(text: str) -> tuple[bytes, ...]:
    """A TXT value as character-strings of at most 255 bytes (a multi-byte character may be
    split between two: the strings are joined as bytes on read)."""
    data = text.encode("utf-8")
    return tuple(data[i : i + MAX_STRING] for i in range(0, len(data), MAX_STRING)) or (b"",)


def to_rdata(kind: str, value: str) -> dns.rdata.Rdata:
    """One canonical value as rdata; a value the wire form refuses is ``InvalidRecord``."""
    rdtype = dns.rdatatype.from_text(kind)
    if kind == "TXT":
        return TXT(IN, rdtype, txt_strings(value))
    fields = value.split(" ")
    for index in _HOSTS.get(kind, ()):
        if fields[index] != ".":
            fields[index] += "."
    try:
        return dns.rdata.from_text(
            IN, rdtype, " ".join(fields), origin=dns.name.root, relativize=False
        )
    except dns.exception.DNSException as err:
        raise InvalidRecord(
            f"Invalid {kind} value {value!r}: {err}.", details={"value": value}
        ) from err


def to_rdataset(record: RecordSet) -> dns.rdataset.Rdataset:
    rdataset = dns.rdataset.Rdataset(IN, dns.rdatatype.from_text(record.key.type))
    for value in record.values:
        rdataset.add(to_rdata(record.key.type, value), record.ttl)
    return rdataset


def value_of(kind: str, rdata: dns.rdata.Rdata) -> str:
    """One rdata as the text a request would give (before canonical form)."""
    if isinstance(rdata, TXT):
        return b"".join(rdata.strings).decode("utf-8", errors="replace")
    return rdata.to_text(origin=dns.name.root, relativize=False)


def values_of(kind: str, rdataset: dns.rdataset.Rdataset) -> tuple[str, ...]:
    """The canonical values of an rdataset read from the server (sorted: sets compare equal)."""
    return tuple(sorted(canonical_values(kind, [value_of(kind, rd) for rd in rdataset])))
