"""Record values in presentation format: validation and the canonical form they compare in.

Addresses are normalised (``2001:DB8:0::1`` -> ``2001:db8::1``), host names lower-cased without
the trailing dot, CAA tags lower-cased and values re-quoted, and duplicates removed, so that an
unchanged upsert is recognised as one whatever spelling the caller used.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Callable, Iterable

from sidecar.errors import InvalidRecord
from sidecar.records.names import normalize_host

MAX_TXT = 4000
MAX_VALUES = 100
CACHED_VALUE = 255  # values up to this long have their canonical form remembered

_CAA = re.compile(r'(\d+)\s+([A-Za-z0-9]+)\s+(?:"((?:[^"\\]|\\.)*)"|(\S+))')


def _fail(kind: str, value: str, why: str) -> InvalidRecord:
    return InvalidRecord(f"Invalid {kind} value {value!r}: {why}.", details={"value": value})


def _ipv4(value: str) -> str:
    try:
        return str(ipaddress.IPv4Address(value.strip()))
    except ValueError as err:
        raise _fail("A", value, "not an IPv4 address") from err


def _ipv6(value: str) -> str:
    text = value.strip()
    if "%" in text:
        raise _fail("AAAA", value, "a scoped address (with %zone) cannot be published")
    try:
        return ipaddress.IPv6Address(text).compressed
    except ValueError as err:
        raise _fail("AAAA", value, "not an IPv6 address") from err


def _target(value: str, kind: str) -> str:
    """A host name in a value; ``.`` stands for "no service" (null MX, RFC 7505)."""
    text = value.strip()
    if text == ".":
        return "."
    return normalize_host(text, field=f"{kind} target")


def _uint(text: str, kind: str, value: str, what: str, top: int) -> int:
    if not text.isdigit() or int(text) > top:
        raise _fail(kind, value, f"{what} must be a whole number from 0 to {top}")
    return int(text)


def _host(value: str) -> str:
    return normalize_host(value, field="value")


def _txt(value: str) -> str:
    if len(value.encode("utf-8")) > MAX_TXT:
        raise _fail("TXT", value[:40] + "...", f"longer than {MAX_TXT} bytes")
    if any(ord(char) < 0x20 and char != "\t" for char in value):
        raise _fail("TXT", value, "control characters are not allowed")
    return value


def _mx(value: str) -> str:
    parts = value.split()
    if len(parts) != 2:
        raise _fail("MX", value, "expected 'priority host', for example '10 mail.example.com'")
    priority = _uint(parts[0], "MX", value, "priority", 65535)
    return f"{priority} {_target(parts[1], 'MX')}"


def _srv(value: str) -> str:
    parts = value.split()
    if len(parts) != 4:
        raise _fail(
            "SRV", value, "expected 'priority weight port target', e.g. '10 5 5060 sip.example.com'"
        )
    numbers = [
        _uint(text, "SRV", value, what, 65535)
        for text, what in zip(parts[:3], ("priority", "weight", "port"), strict=True)
    ]
    return " ".join([*map(str, numbers), _target(parts[3], "SRV")])


def _caa(value: str) -> str:
    match = _CAA.fullmatch(value.strip())
    if match is None:
        raise _fail(
            "CAA", value, "expected 'flags tag \"value\"', e.g. '0 issue \"letsencrypt.org\"'"
        )
    flags = _uint(match[1], "CAA", value, "flags", 255)
    inner = match[3] if match[3] is not None else match[4]
    return f'{flags} {match[2].lower()} "{inner}"'


CANONICALIZERS: dict[str, Callable[[str], str]] = {
    "A": _ipv4,
    "AAAA": _ipv6,
    "CNAME": _host,
    "TXT": _txt,
    "MX": _mx,
    "SRV": _srv,
    "CAA": _caa,
    "NS": _host,
}
SUPPORTED_TYPES = tuple(CANONICALIZERS)


def normalize_type(raw: str) -> str:
    """Record types are case-insensitive and stored upper case."""
    kind = raw.strip().upper()
    if kind not in CANONICALIZERS:
        raise InvalidRecord(
            f"Unsupported record type {raw!r}; supported: {', '.join(SUPPORTED_TYPES)}.",
            details={"field": "type", "supported": list(SUPPORTED_TYPES)},
        )
    return kind


def canonical_values(kind: str, values: Iterable[str]) -> tuple[str, ...]:
    """Validate and canonicalise ``values`` of type ``kind``; order kept, duplicates removed."""
    seen: dict[str, None] = {}
    for value in values:
        if len(value) <= CACHED_VALUE:
            seen.setdefault(_canonical(kind, value), None)
        else:
            seen.setdefault(CANONICALIZERS[kind](value), None)
    result = tuple(seen)
    if not result:
        raise InvalidRecord("A record needs at least one value.", details={"field": "values"})
    if len(result) > MAX_VALUES:
        raise InvalidRecord(
            f"A record set holds at most {MAX_VALUES} values; got {len(result)}.",
            details={"field": "values"},
        )
    if kind == "CNAME" and len(result) != 1:
        raise InvalidRecord(
            f"A CNAME record has exactly one value; got {len(result)}.",
            details={"field": "values"},
        )
    return result


@functools.lru_cache(maxsize=4096)  # the same values come back on every reconcile
def _canonical(kind: str, value: str) -> str:
    """A short value's canonical form (a pure function; errors are raised, not remembered)."""
    return CANONICALIZERS[kind](value)
