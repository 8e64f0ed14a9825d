"""Provider limits a routing table can break for every request: a zone's default TTL.

A request without ``ttl`` takes its zone's (``zones[i].ttl``, else ``defaults.ttl``, else 300).
When that value is outside the zone's provider range, every such upsert would be refused, so
``check``, start-up and reload refuse the table instead, naming where the value came from.
Works on the raw data, best effort, as :func:`sidecar.config.schema.cross_check` does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sidecar.providers.base import ROOT, ZonePolicy
from sidecar.providers.cloudflare import mapping as cloudflare

_Path = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class TtlRange:
    """The TTLs a provider takes, and how to say so."""

    provider: str
    accepts: Callable[[int], bool]
    described: str


# Providers not listed take any TTL the schema allows (1 to 2^31 - 1).
TTL_RANGES = {"cloudflare": TtlRange("Cloudflare", cloudflare.ttl_accepted, cloudflare.TTL_RANGE)}


def ttl_source(zone: Mapping[str, Any], index: int) -> str:
    """Where a zone's default TTL comes from, as a key path of the table."""
    return f"zones[{index}].ttl" if zone.get("ttl") is not None else "defaults.ttl"


def ttl_findings(data: Mapping[str, Any]) -> list[tuple[_Path, str]]:
    """Each zone default TTL its provider would refuse, reported at the key that sets it."""
    providers = {
        account.get("name"): account.get("provider")
        for account in _entries(data, "accounts")
        if isinstance(account.get("name"), str)
    }
    defaults = data.get("defaults")
    default_ttl = defaults.get("ttl") if isinstance(defaults, dict) else None
    if not isinstance(default_ttl, int):
        default_ttl = ZonePolicy(name=ROOT).ttl if default_ttl is None else None
    by_default: dict[str, list[str]] = {}
    problems: list[tuple[_Path, str]] = []
    for index, zone in enumerate(_entries(data, "zones")):
        limits = TTL_RANGES.get(str(providers.get(zone.get("account"))))
        own = zone.get("ttl")
        ttl = own if own is not None else default_ttl
        if limits is None or not isinstance(ttl, int) or isinstance(ttl, bool):
            continue
        if limits.accepts(ttl):
            continue
        if own is not None:
            why = (
                f"TTL {ttl} is refused by {limits.provider}, which zone {zone.get('name')!r} is "
                f"on (account {zone.get('account')!r}): use {limits.described}; as it stands, "
                "every request without a ttl there fails"
            )
            problems.append((("zones", index, "ttl"), why))
        else:
            label = f"{zone.get('name')!r} (zones[{index}], account {zone.get('account')!r})"
            by_default.setdefault(limits.provider, []).append(label)
    for provider, zones in by_default.items():
        limits = next(r for r in TTL_RANGES.values() if r.provider == provider)
        why = (
            f"TTL {default_ttl} is refused by {provider}, and it is the default of "
            f"{', '.join(zones)}: use {limits.described} here, or give those zones their own "
            "ttl; as it stands, every request without a ttl there fails"
        )
        problems.append((("defaults", "ttl"), why))
    return problems


def _entries(data: Mapping[str, Any], section: str) -> list[Mapping[str, Any]]:
    entries = data.get(section)
    if not isinstance(entries, list):
        return []
    return [entry if isinstance(entry, dict) else {} for entry in entries]
