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
from sidecar.providers.rfc2136.address import split_server
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


def _server(raw: str) -> str:
    try:
        host, port = split_server(raw)
    except ValueError:
        host, port = "", 0
    if not host or not 1 <= port <= 65535:
        raise ValueError("expected host or host:port (port 1-65535), like 192.0.2.53:53")
    return raw.strip()


class Tsig(_TableModel):
    """The TSIG key the DNS server knows the sidecar by."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=253)]
    algorithm: Literal["hmac-sha224", "hmac-sha256", "hmac-sha384", "hmac-sha512"] = "hmac-sha256"
    secret: Credential  # base64, as in the key file


class Rfc2136Account(_TableModel):
    name: EntryName
    provider: Literal["rfc2136"]
    server: Annotated[str, AfterValidator(_server)]  # the zones' primary: host or host:port
    tsig: Tsig | None = None

    @property
    def credentials(self) -> list[Credential]:
        return [self.tsig.secret] if self.tsig is not None else []


AccountSpec = Annotated[
    CloudflareAccount | MemoryAccount | Rfc2136Account, Field(discriminator="provider")
]


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
    orphans: Orphans | None = None  # sweeps: report | prune
    drift: Drift | None = None  # sweeps: report | repair
    # split horizon: only these clients' requests route here (None: every client's)
    clients: Annotated[list[EntryName], Field(min_length=1)] | None = None


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
    for section in ("clients", "accounts"):
        first: dict[str, int] = {}
        for index, entry in _entries(data, section):
            name = _canonical(entry.get("name"), zone=False)
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
    zones = _zone_entries(data)
    problems += _overlaps(zones)
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
    problems += _zone_clients(data, names["clients"])
    problems += _client_zones(data, zones)
    problems += _dns_zones(data)
    return problems


_Findings = list[tuple[tuple[str | int, ...], str]]
_ZoneEntry = tuple[int, str, frozenset[str] | None]  # index, canonical name, clients it routes


def _dns_zones(data: Mapping[str, Any]) -> _Findings:
    """An RFC 2136 account routed the catch-all zone: a DNS UPDATE names its zone."""
    dynamic = {
        entry.get("name")
        for _, entry in _entries(data, "accounts")
        if entry.get("provider") == "rfc2136"
    }
    return [
        (
            ("zones", index, "name"),
            (
                f"zone '.' routes to rfc2136 account {zone.get('account')!r}: a DNS UPDATE "
                "names its zone, so name each DNS zone the server holds (home.example.com, ...)"
            ),
        )
        for index, zone in _entries(data, "zones")
        if zone.get("account") in dynamic and _canonical(zone.get("name"), zone=True) == ROOT
    ]


def _zone_clients(data: Mapping[str, Any], clients: list[str]) -> _Findings:
    """Zone entries routing a client that is not defined."""
    problems: _Findings = []
    for index, zone in _entries(data, "zones"):
        routed = zone.get("clients")
        for c_index, client in enumerate(routed if isinstance(routed, list) else []):
            if isinstance(client, str) and client not in clients:
                problems.append(
                    (
                        ("zones", index, "clients", c_index),
                        (
                            f"zone {zone.get('name')!r} routes client {client!r}, which is not "
                            f"defined (clients: {', '.join(sorted(clients)) or 'none'})"
                        ),
                    )
                )
    return problems


def _client_zones(data: Mapping[str, Any], zones: list[_ZoneEntry]) -> _Findings:
    """Clients allowed a zone that no entry open to them routes."""
    problems: _Findings = []
    for index, client in _entries(data, "clients"):
        allowed = client.get("zones")
        own = client.get("name")
        open_to = [name for _, name, only in zones if only is None or own in only]
        for z_index, raw in enumerate(allowed if isinstance(allowed, list) else []):
            name = _canonical(raw, zone=True)
            if name is None or any(is_within(name, zone) for zone in open_to):
                continue
            why = f"client {own!r} may change {name!r}, but no zone routes it"
            if any(is_within(name, zone) for _, zone, _ in zones):
                why += " for this client (add it to the clients of the zone entry)"
            problems.append((("clients", index, "zones", z_index), why))
    return problems


def _zone_entries(data: Mapping[str, Any]) -> list[_ZoneEntry]:
    """The zone entries that can be read: index, canonical name, the clients it routes."""
    found = []
    for index, entry in _entries(data, "zones"):
        name = _canonical(entry.get("name"), zone=True)
        routed = entry.get("clients")
        if name is not None:
            only = frozenset(c for c in routed if isinstance(c, str)) if routed else None
            found.append((index, name, only if isinstance(routed, list) else None))
    return found


def _overlaps(zones: list[_ZoneEntry]) -> _Findings:
    """Entries of one zone name that some client would see twice: two without ``clients``, one
    without beside one with, or two whose ``clients`` share a name (each named once, at the
    later entry, against the first it overlaps)."""
    problems: _Findings = []
    for position, (index, name, only) in enumerate(zones):
        for first, other, other_only in zones[:position]:
            if other != name:
                continue
            if only is None and other_only is None:
                why = f"duplicate name {name!r} (first at zones[{first}])"
            elif only is None or other_only is None:
                why = (
                    f"zone {name!r} overlaps zones[{first}]: an entry without clients routes "
                    "every client; name the clients of each entry"
                )
            elif only & other_only:
                shared = ", ".join(sorted(only & other_only))
                why = (
                    f"zone {name!r} overlaps zones[{first}] for client(s) {shared}: the clients "
                    "of two entries of one zone must not share a name"
                )
            else:
                continue
            problems.append((("zones", index, "name"), why))
            break
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
