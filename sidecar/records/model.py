"""The record set: the unit the protocol and every provider speak."""

from __future__ import annotations

import functools
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sidecar.errors import InvalidRecord
from sidecar.records.names import RecordName
from sidecar.records.values import canonical_values, normalize_type

MAX_TTL = 2_147_483_647  # RFC 2181, section 8


def check_ttl(ttl: int) -> int:
    """A TTL any provider could take; providers narrow it further (Cloudflare: 1 or 60..86400)."""
    if not 1 <= ttl <= MAX_TTL:
        raise InvalidRecord(
            f"Invalid TTL {ttl}: it must be a whole number of seconds from 1 to {MAX_TTL}.",
            details={"field": "ttl"},
        )
    return ttl


@dataclass(frozen=True, slots=True)
class RecordKey:
    """Which record set: a type at a name."""

    type: str
    name: RecordName

    @classmethod
    @functools.lru_cache(maxsize=4096)  # the same keys come back on every reconcile
    def parse(cls, kind: str, domain: str, subdomain: str) -> RecordKey:
        return cls(normalize_type(kind), RecordName.parse(domain, subdomain))

    @classmethod
    def build(cls, kind: str, domain: str, subdomain: str) -> RecordKey:
        """``parse`` without its cache: for many keys read once (the DNSRecords view)."""
        return cls(sys.intern(normalize_type(kind)), RecordName.build(domain, subdomain))

    @property
    def fqdn(self) -> str:
        return self.name.fqdn


@dataclass(frozen=True, slots=True)
class RecordSet:
    """All values of one type at one name, in canonical form, with a TTL."""

    key: RecordKey
    values: tuple[str, ...]
    ttl: int

    @classmethod
    def build(cls, key: RecordKey, values: Sequence[str], ttl: int) -> RecordSet:
        if key.type == "NS" and key.name.is_apex:
            raise InvalidRecord(
                "NS records at the zone apex belong to the provider; set them below the apex.",
                details={"field": "subdomain"},
            )
        return cls(key, canonical_values(key.type, values), check_ttl(ttl))

    def same_content(self, other: RecordSet) -> bool:
        """Equal as DNS data: the same set of values and the same TTL."""
        return self.ttl == other.ttl and set(self.values) == set(other.values)

    def to_wire(self) -> dict[str, Any]:
        name = self.key.name
        return {
            "type": self.key.type,
            "domain": name.domain,
            "subdomain": name.subdomain,
            "fqdn": name.fqdn,
            "values": list(self.values),
            "ttl": self.ttl,
        }
