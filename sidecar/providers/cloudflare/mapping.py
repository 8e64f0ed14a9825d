"""Between record-set values and Cloudflare's one-record-per-value shapes.

Cloudflare keeps MX priority in ``priority``, SRV and CAA in structured ``data``, and may hand
TXT content back quoted (``"v=spf1 -all"``, long ones split into ``"..." "..."``). Values read
back are canonicalised by ``sidecar.records.values``, the same code that canonicalises what the
operator sends, so equal data compares equal and an unchanged upsert writes nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sidecar.errors import InvalidRecord, SidecarError
from sidecar.providers.cloudflare.payloads import ApiRecord, RecordBody, RecordData, RecordFields
from sidecar.records.values import canonical_values

PROXIABLE = frozenset({"A", "AAAA", "CNAME"})
AUTO_TTL = 1
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True, slots=True)
class CloudflareRecord:
    """One Cloudflare record, its value in our canonical presentation form."""

    id: str
    type: str
    name: str
    value: str
    ttl: int
    proxied: bool
    comment: str | None

    def describe(self) -> str:
        return f"{self.type} {self.value}"


def from_api(raw: ApiRecord) -> CloudflareRecord:
    kind = str(raw.get("type", "")).upper()
    return CloudflareRecord(
        id=str(raw["id"]),
        type=kind,
        name=str(raw.get("name", "")).lower().rstrip("."),
        value=_value(kind, raw),
        ttl=int(raw.get("ttl") or AUTO_TTL),
        proxied=bool(raw.get("proxied")),
        comment=raw.get("comment") or None,
    )


def _value(kind: str, raw: ApiRecord) -> str:
    content = str(raw.get("content") or "")
    found = raw.get("data")
    data: RecordData = found if isinstance(found, dict) else {}
    if kind == "MX":
        text = f"{_num(raw.get('priority'))} {content}"
    elif kind == "SRV" and data:
        numbers = " ".join(
            _num(number) for number in (data.get("priority"), data.get("weight"), data.get("port"))
        )
        text = f"{numbers} {data.get('target')}"
    elif kind == "SRV":
        text = f"{_num(raw.get('priority'))} {content}"
    elif kind == "CAA" and data:
        text = f'{_num(data.get("flags"))} {data.get("tag")} "{data.get("value")}"'
    elif kind == "TXT":
        text = unquote_txt(content)
    else:
        text = content
    try:
        return canonical_values(kind, [text])[0]
    except (SidecarError, KeyError):
        return text  # a record we could not have written; compared as it is


def _num(value: object) -> str:
    """The SDK's models hold these numbers as floats (10.0); the wire form is an integer."""
    if isinstance(value, int | float) and not isinstance(value, bool) and float(value).is_integer():
        return str(int(value))
    return str(value if value is not None else 0)


def unquote_txt(content: str) -> str:
    """``"a" "b"`` -> ``ab``: Cloudflare's quoted form of a TXT value; bare text is kept."""
    stripped = content.strip()
    if not (stripped.startswith('"') and stripped.endswith('"')):
        return content
    parts = _QUOTED.findall(stripped)
    if not parts or _QUOTED.sub("", stripped).strip():
        return content
    return "".join(re.sub(r"\\(.)", r"\1", part) for part in parts)


def to_api(
    kind: str, name: str, value: str, *, ttl: int, proxied: bool, comment: str | None
) -> RecordBody:
    """The request body for one record holding ``value``."""
    body: RecordBody = {"type": kind, "name": name, "ttl": ttl, "proxied": proxied}
    if comment is not None:
        body["comment"] = comment
    return {**body, **_fields(kind, value)}


def _fields(kind: str, value: str) -> RecordFields:
    if kind == "MX":
        priority, host = value.split(" ", 1)
        return {"content": host, "priority": int(priority)}
    if kind == "SRV":
        priority, weight, port, target = value.split(" ", 3)
        data: RecordData = {
            "priority": int(priority),
            "weight": int(weight),
            "port": int(port),
            "target": target,
        }
        return {"data": data}
    if kind == "CAA":
        flags, tag, quoted = value.split(" ", 2)
        return {"data": {"flags": int(flags), "tag": tag, "value": quoted[1:-1]}}
    return {"content": value}


def effective(kind: str, ttl: int, zone_proxied: bool) -> tuple[int, bool]:
    """The TTL and proxied flag Cloudflare will hold: proxied only where it can be, and then
    the TTL is automatic (1), so the desired state matches what is read back and nothing loops.
    """
    proxied = zone_proxied and kind in PROXIABLE
    if proxied:
        return AUTO_TTL, True
    if not ttl_accepted(ttl):
        raise InvalidRecord(
            f"Invalid TTL {ttl} for Cloudflare: use {TTL_RANGE}.", details={"field": "ttl"}
        )
    return ttl, False


TTL_RANGE = "1 (automatic) or 60 to 86400 seconds"


def ttl_accepted(ttl: int) -> bool:
    """Whether Cloudflare takes ``ttl`` for a record that is not proxied."""
    return ttl == AUTO_TTL or 60 <= ttl <= 86400
