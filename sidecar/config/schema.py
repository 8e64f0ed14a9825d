"""The routing table's schema (SPEC section 4) as strict pydantic models.

Field names follow the YAML (``zoneId``, ``apiToken``, ``perSeconds``...). Unknown keys are
errors. Checks that span entries (duplicate names, references between sections) live in
:func:`cross_check`, which reports every finding with the key path it concerns.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    HttpUrl,
    StringConstraints,
    model_validator,
)

from sidecar.auth.signing import Algorithm
from sidecar.credentials.sources import Credential
from sidecar.errors import InvalidRecord
from sidecar.providers.base import ROOT, Drift, Orphans, Ownership, ZonePolicy
from sidecar.providers.ownership import MAX_COMMENT, MAX_MARKER
from sidecar.records.names import is_within, normalize_domain


def _zone_name(raw: str) -> str:
    if raw.strip() == ROOT:
        return ROOT
    try:
        return normalize_domain(raw, field="zone name")
    except InvalidRecord as err:
        raise ValueError(err.message) from None


def _algorithm(raw: object) -> object:
    return Algorithm.parse(raw) if isinstance(raw, str) else raw


def _comment(raw: str) -> str:
    if len(raw) > MAX_COMMENT:
        raise ValueError(
            f"the comment is {len(raw)} characters; keep it to {MAX_COMMENT}, so that the "
            f"owner and DNSClass fit beside it in the ownership marker (Cloudflare keeps "
            f"{MAX_MARKER} characters of a record's comment)"
        )
    return raw


def _ownership(raw: object) -> object:
    # YAML 1.1 reads a bare `off` as false; that is what the author meant.
    return "off" if raw is False else raw


ZoneName = Annotated[str, AfterValidator(_zone_name)]
OwnershipField = Annotated[Ownership, BeforeValidator(_ownership)]
EntryName = Annotated[
    str, StringConstraints(min_length=1, max_length=63, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
]
Ttl = Annotated[int, Field(ge=1, le=2_147_483_647)]
AlgorithmField = Annotated[Algorithm, BeforeValidator(_algorithm)]
Comment = Annotated[str, AfterValidator(_comment)]


class _TableModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


_ZONE = ZonePolicy(name=ROOT)  # the defaults are declared once, on ZonePolicy


class Defaults(_TableModel):
    ttl: Ttl = _ZONE.ttl
    proxied: bool = _ZONE.proxied
    ownership: OwnershipField = _ZONE.ownership
    comment: Comment = _ZONE.comment
    orphans: Orphans = _ZONE.orphans  # sweeps: report | prune
    drift: Drift = _ZONE.drift  # sweeps: report | repair


class ClientSpec(_TableModel):
    """An HMAC caller: its own algorithm and secrets, or those of a DNSClass."""

    name: EntryName
    algorithm: AlgorithmField | None = None
    secrets: Annotated[list[Credential], Field(min_length=1)] | None = None
    zones: list[ZoneName] | None = None
    dns_class: EntryName | None = Field(default=None, alias="dnsClass")

    @model_validator(mode="after")
    def _one_source(self) -> ClientSpec:
        if self.dns_class is not None and (self.secrets or self.algorithm):
            raise ValueError("give either dnsClass or algorithm + secrets, not both")
        if self.dns_class is None and not self.secrets:
            raise ValueError("a client needs secrets (or dnsClass to read them from)")
        return self

    @property
    def hmac_algorithm(self) -> Algorithm:
        return self.algorithm or Algorithm.SHA256


class RateLimit(_TableModel):
    requests: Annotated[int, Field(ge=1)] = 1200
    per_seconds: Annotated[float, Field(gt=0)] = Field(default=300.0, alias="perSeconds")


class CloudflareAccount(_TableModel):
    name: EntryName
    provider: Literal["cloudflare"]
    api_token: Credential | None = Field(default=None, alias="apiToken")
    api_key: Credential | None = Field(default=None, alias="apiKey")
    email: Annotated[str, StringConstraints(pattern=r"^[^@\s]+@[^@\s]+$")] | None = None
    base_url: HttpUrl | None = Field(default=None, alias="baseUrl")
    rate_limit: RateLimit = Field(default_factory=RateLimit, alias="rateLimit")
    read_cache_seconds: Annotated[float, Field(ge=0, le=3600)] = Field(
        default=0.0, alias="readCacheSeconds"
    )  # > 0: GETs read whole zones, cached this long (reconcile sweeps cost a call per zone)

    @model_validator(mode="after")
    def _one_auth_mode(self) -> CloudflareAccount:
        if (self.api_token is None) == (self.api_key is None):
            raise ValueError("a Cloudflare account needs exactly one of apiToken or apiKey")
        if self.api_key is not None and self.email is None:
            raise ValueError("apiKey (the global API key) needs email as well")
        if self.api_token is not None and self.email is not None:
            raise ValueError("email goes with apiKey, not with apiToken")
        return self

    @property
    def credentials(self) -> list[Credential]:
        return [c for c in (self.api_token, self.api_key) if c is not None]


class MemoryAccount(_TableModel):
    name: EntryName
    provider: Literal["memory"]
    file: str | None = None  # JSON snapshot, written atomically on every change

    @property
    def credentials(self) -> list[Credential]:
        return []


AccountSpec = Annotated[CloudflareAccount | MemoryAccount, Field(discriminator="provider")]


class ZoneSpec(_TableModel):
    name: ZoneName
    account: EntryName
    zone_id: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")] | None = Field(
        default=None, alias="zoneId"
    )
    ttl: Ttl | None = None
    proxied: bool | None = None
    ownership: OwnershipField | None = None
    comment: Comment | None = None
    orphans: Orphans | None = None
    drift: Drift | None = None


class RoutingTableSpec(_TableModel):
    version: Literal[1]
    defaults: Defaults = Field(default_factory=Defaults)
    clients: list[ClientSpec] = Field(default_factory=list)
    accounts: Annotated[list[AccountSpec], Field(min_length=1)]
    zones: Annotated[list[ZoneSpec], Field(min_length=1)]


def cross_check(data: Mapping[str, Any]) -> list[tuple[tuple[str | int, ...], str]]:
    """Findings that span entries, each with the key path it concerns.

    Works on the raw data, best effort, so that ``check`` lists these problems too when the
    schema itself has failed elsewhere.
    """
    problems: list[tuple[tuple[str | int, ...], str]] = []
    names: dict[str, list[str]] = {}
    for section in ("clients", "accounts", "zones"):
        first: dict[str, int] = {}
        for index, entry in _entries(data, section):
            name = _canonical(entry.get("name"), zone=section == "zones")
            if name is None:
                continue
            if name in first:
                problems.append(
                    (
                        (section, index, "name"),
                        f"duplicate name {name!r} (first at {section}[{first[name]}])",
                    )
                )
            first.setdefault(name, index)
        names[section] = list(first)
    accounts = names["accounts"]
    for index, zone in _entries(data, "zones"):
        account = zone.get("account")
        if isinstance(account, str) and account not in accounts:
            problems.append(
                (
                    ("zones", index, "account"),
                    (
                        f"zone {zone.get('name')!r} names account {account!r}, which is not "
                        f"defined (accounts: {', '.join(sorted(accounts)) or 'none'})"
                    ),
                )
            )
    for index, client in _entries(data, "clients"):
        zones = client.get("zones")
        for z_index, raw in enumerate(zones if isinstance(zones, list) else []):
            name = _canonical(raw, zone=True)
            if name is not None and not any(is_within(name, zone) for zone in names["zones"]):
                problems.append(
                    (
                        ("clients", index, "zones", z_index),
                        f"client {client.get('name')!r} may change {name!r}, but no zone routes it",
                    )
                )
    return problems


def _entries(data: Mapping[str, Any], section: str) -> list[tuple[int, Mapping[str, Any]]]:
    entries = data.get(section)
    if not isinstance(entries, list):
        return []
    return [(index, entry) for index, entry in enumerate(entries) if isinstance(entry, dict)]


def _canonical(raw: object, *, zone: bool) -> str | None:
    if not isinstance(raw, str):
        return None
    if not zone:
        return raw
    try:
        return _zone_name(raw)
    except ValueError:
        return None
