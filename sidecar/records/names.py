"""DNS names: normalisation to the canonical form every layer compares.

Canonical means lower-case ASCII (internationalised labels converted to IDNA punycode), no
trailing dot, each label 1..63 octets, the whole name at most 253 octets. Letters, digits,
hyphens and underscores are allowed in labels (underscores for ``_acme-challenge`` and SRV
names); ``*`` only as the whole leftmost label of a record's name.
"""

from __future__ import annotations

import functools
import re
import sys
from dataclasses import dataclass

import idna

from sidecar.errors import InvalidRecord

MAX_NAME = 253
MAX_LABEL = 63
APEX = "@"

_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?")


def _label(raw: str, *, field: str, name: str) -> str:
    if not raw:
        raise InvalidRecord(f"{field} {name!r} has an empty label.", details={"field": field})
    if raw.isascii():
        label = raw.lower()
    else:
        try:
            label = idna.encode(raw, uts46=True).decode("ascii")
        except idna.IDNAError as err:
            raise InvalidRecord(
                f"{field} {name!r} has a label that is not a valid internationalised name: {err}.",
                details={"field": field},
            ) from err
    if len(label) > MAX_LABEL:
        raise InvalidRecord(
            f"{field} {name!r} has a label of {len(label)} characters; the limit is {MAX_LABEL}.",
            details={"field": field},
        )
    if not _LABEL.fullmatch(label):
        raise InvalidRecord(
            f"{field} {name!r} has a label {raw!r} with characters a DNS name cannot hold "
            "(letters, digits, '-' and '_' only; no leading or trailing '-').",
            details={"field": field},
        )
    return label


def _labels(raw: str, *, field: str, allow_wildcard: bool) -> list[str]:
    name = raw.strip()
    if name.endswith("."):
        name = name[:-1]
    if not name:
        raise InvalidRecord(f"{field} must not be empty.", details={"field": field})
    parts = name.split(".")
    labels: list[str] = []
    for index, part in enumerate(parts):
        if part == "*":
            if not allow_wildcard or index != 0:
                where = "the leftmost label of a subdomain" if allow_wildcard else "a record name"
                raise InvalidRecord(
                    f"{field} {raw!r}: '*' is only allowed as {where}.", details={"field": field}
                )
            labels.append("*")
            continue
        labels.append(_label(part, field=field, name=raw))
    return labels


def _check_length(name: str, *, field: str) -> str:
    if len(name) > MAX_NAME:
        raise InvalidRecord(
            f"{field} is {len(name)} characters long; a DNS name holds at most {MAX_NAME}.",
            details={"field": field},
        )
    return name


def normalize_domain(raw: str, *, field: str = "domain") -> str:
    """A zone-like name (``domain``): canonical, no wildcard."""
    return _check_length(".".join(_labels(raw, field=field, allow_wildcard=False)), field=field)


def normalize_host(raw: str, *, field: str = "value") -> str:
    """A host name inside a record value (CNAME, MX, SRV, NS target)."""
    return normalize_domain(raw, field=field)


def normalize_subdomain(raw: str, *, field: str = "subdomain") -> str:
    """The part left of the domain: ``@`` (or empty) for the apex, ``*`` leftmost allowed."""
    stripped = raw.strip()
    if stripped in ("", APEX):
        return APEX
    return ".".join(_labels(stripped, field=field, allow_wildcard=True))


@dataclass(frozen=True, slots=True)
class RecordName:
    """Where a record lives: the request's domain and subdomain, and the FQDN they make."""

    domain: str
    subdomain: str
    fqdn: str

    @classmethod
    @functools.lru_cache(maxsize=4096)  # the same names come back on every reconcile
    def parse(cls, domain: str, subdomain: str) -> RecordName:
        return cls.build(domain, subdomain)

    @classmethod
    def build(cls, domain: str, subdomain: str) -> RecordName:
        """``parse`` without its cache: for many names read once (the DNSRecords view)."""
        dom = sys.intern(normalize_domain(domain))  # one copy of each zone's name
        sub = normalize_subdomain(subdomain)
        fqdn = dom if sub == APEX else f"{sub}.{dom}"
        return cls(dom, sub, _check_length(fqdn, field="fqdn"))

    @property
    def is_apex(self) -> bool:
        return self.subdomain == APEX


def is_within(name: str, zone: str) -> bool:
    """Whether ``name`` is ``zone`` or below it, on label boundaries (``.`` is the root)."""
    return zone in (".", name) or name.endswith("." + zone)
