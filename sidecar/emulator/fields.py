"""Record fields as Cloudflare validates them: names, addresses, host names, MX/SRV/CAA data."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any

from sidecar.emulator.errors import invalid
from sidecar.emulator.payloads import RecordExtras, StructuredData

SUPPORTED = ("A", "AAAA", "CNAME", "TXT", "MX", "SRV", "CAA", "NS")
PROXIABLE = ("A", "AAAA", "CNAME")
MAX_COMMENT = 100
_HOST = re.compile(
    r"(?=.{1,253}$)(\*\.)?([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?\.)*[a-z0-9_-]{1,63}"
)


def fqdn(raw: str, zone: str) -> str:
    name = raw.strip().lower().rstrip(".")
    if name in ("", "@"):
        return zone
    if name != zone and not name.endswith("." + zone):
        name = f"{name}.{zone}"
    if not _HOST.fullmatch(name):
        raise invalid(9007, f"DNS name {raw!r} is invalid.")
    return name


def _host(value: Any, what: str) -> str:
    text = str(value or "").strip().lower().rstrip(".")
    if not _HOST.fullmatch(text):
        raise invalid(9007, f"Content for {what} record must be a valid hostname.")
    return text


def _uint(value: Any, top: int, message: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= top:
        raise invalid(9101, message)
    return value


def content(kind: str, body: Mapping[str, Any]) -> tuple[str, RecordExtras]:
    """The record's ``content`` as Cloudflare stores it, and the fields beside it."""
    raw = body.get("content")
    if kind == "A":
        try:
            return str(ipaddress.IPv4Address(str(raw))), {}
        except ValueError:
            raise invalid(9005, "Content for A record must be a valid IPv4 address.") from None
    if kind == "AAAA":
        try:
            return ipaddress.IPv6Address(str(raw)).compressed, {}
        except ValueError:
            raise invalid(9006, "Content for AAAA record must be a valid IPv6 address.") from None
    if kind in ("CNAME", "NS"):
        return _host(raw, kind), {}
    if kind == "TXT":
        if not isinstance(raw, str) or not raw or len(raw) > 4096:
            raise invalid(9101, "Content for TXT record must be 1 to 4096 characters.")
        return raw, {}
    if kind == "MX":
        priority = _uint(body.get("priority"), 65535, "MX records need a priority from 0 to 65535.")
        target = "." if str(raw).strip() == "." else _host(raw, "MX")
        return target, {"priority": priority}
    data = body.get("data")
    if not isinstance(data, Mapping):
        raise invalid(9101, f"{kind} records need a data object.")
    if kind == "SRV":
        numbers = {
            key: _uint(data.get(key), 65535, f"SRV data.{key} must be from 0 to 65535.")
            for key in ("priority", "weight", "port")
        }
        target = "." if str(data.get("target")).strip() == "." else _host(data.get("target"), "SRV")
        srv_data: StructuredData = {
            "priority": numbers["priority"],
            "weight": numbers["weight"],
            "port": numbers["port"],
            "target": target,
        }
        return f"{numbers['weight']} {numbers['port']} {target}", {
            "priority": numbers["priority"],
            "data": srv_data,
        }
    flags = _uint(data.get("flags"), 255, "CAA data.flags must be from 0 to 255.")
    tag, value = data.get("tag"), data.get("value")
    if (
        not isinstance(tag, str)
        or not re.fullmatch(r"[A-Za-z0-9]+", tag)
        or not isinstance(value, str)
    ):
        raise invalid(9101, "CAA data needs a tag (letters and digits) and a value.")
    return f'{flags} {tag} "{value}"', {"data": {"flags": flags, "tag": tag, "value": value}}
