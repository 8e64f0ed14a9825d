"""Split horizon: zone entries open to named clients, one zone name on two accounts (SPEC 10)."""

from __future__ import annotations

from typing import Any

import pytest

from sidecar.auth.signing import Algorithm
from sidecar.config import loader
from sidecar.config.runtime import Runtime, build
from sidecar.config.schema import cross_check
from sidecar.errors import DomainNotAllowed
from sidecar.providers.base import ZonePolicy
from sidecar.providers.memory import MemoryProvider
from sidecar.providers.ownership import Owner
from sidecar.records import RecordKey
from sidecar.routing.table import Account, Route, RoutingTable
from tests.builders import local
from tests.conftest import StartManagement, StartSidecar, make_settings

PUBLIC_SECRET = b"public-secret-0123456789"
INTERNAL_SECRET = b"internal-secret-0123456789"

TABLE = f"""
version: 1
clients:
  - name: public
    secrets: [{{value: {PUBLIC_SECRET.decode()}}}]
  - name: internal
    algorithm: SHA512
    secrets: [{{value: {INTERNAL_SECRET.decode()}}}]
accounts:
  - {{name: cloud, provider: memory}}
  - {{name: home, provider: memory}}
zones:
  - {{name: example.com, account: cloud, clients: [public]}}
  - {{name: example.com, account: home, clients: [internal]}}
  - {{name: lab.example.com, account: cloud}}
"""


def _runtime(text: str = TABLE, **table: Any) -> Runtime:
    spec = loader.parse(text, "t.yaml")
    return build(spec, make_settings(table=table), source="t", coordination=local())


def _split() -> RoutingTable:
    cloud, home = Account("cloud", MemoryProvider()), Account("home", MemoryProvider())
    return RoutingTable(
        [
            Route(ZonePolicy(name="example.com"), cloud, frozenset({"public"})),
            Route(ZonePolicy(name="example.com"), home, frozenset({"internal"})),
            Route(ZonePolicy(name="lab.example.com"), cloud),
        ],
        {"public": Owner("site", "public"), "internal": Owner("site", "internal")},
        Owner("site"),
    )


def test_one_name_routes_to_the_entry_open_to_each_client() -> None:
    """The same name goes to two accounts for two clients, each route with its client's owner."""
    table = _split()
    public = table.resolve("www.example.com", "public")
    internal = table.resolve("www.example.com", "internal")
    assert (public.account.name, public.zone.owner) == ("cloud", Owner("site", "public"))
    assert (internal.account.name, internal.zone.owner) == ("home", Owner("site", "internal"))


def test_longest_suffix_among_the_entries_open_to_the_client() -> None:
    """An entry open to every client below a split zone wins for both, with each one's owner."""
    table = _split()
    assert table.resolve("a.lab.example.com", "internal").zone == ZonePolicy(
        name="lab.example.com", owner=Owner("site", "internal")
    )
    assert table.resolve("a.lab.example.com", None).zone.owner == Owner("site")


def test_a_client_no_entry_is_open_to_hears_which_entries_route_the_name() -> None:
    """Unsigned callers (or unnamed clients) see only entries without clients; the refusal names
    the entries that would route the name and what to do."""
    table = _split()
    with pytest.raises(DomainNotAllowed) as raised:
        table.resolve("www.example.com", "stranger")
    assert raised.value.message == (
        "No zone open to client 'stranger' covers www.example.com: example.com (clients "
        "internal); example.com (clients public) route only the clients they name (add the "
        "client to the zone entry's clients, or sign as one of them)."
    )
    with pytest.raises(DomainNotAllowed) as unrouted:
        table.resolve("www.example.org", "public")
    assert unrouted.value.message == "No zone in the routing table covers www.example.org."


def test_routes_are_remembered_per_client() -> None:
    """The route of one name is searched once per client, and the two answers differ."""
    table = _split()
    first = table.resolve("x.example.com", "public")
    assert table.resolve("x.example.com", "public") is first
    assert table.resolve("x.example.com", "internal") is not first
    assert [
        (route.zone.name, route.account.name, route.zone.owner)
        for route in table.routes_for("internal")
    ] == [
        ("example.com", "home", Owner("site", "internal")),
        ("lab.example.com", "cloud", Owner("site", "internal")),
    ]


def test_built_table_gives_each_client_its_owner() -> None:
    """A table built from YAML: owner = DNS_SIDECAR_OWNER_ID and the client's DNSClass."""
    runtime = _runtime(
        TABLE.replace("  - name: public\n", "  - name: public\n    dnsClass: pub\n").replace(
            f"    secrets: [{{value: {PUBLIC_SECRET.decode()}}}]\n", "", 1
        ),
        owner_id="cluster-a",
    )
    assert runtime.table.resolve("a.example.com", "public").zone.owner == Owner("cluster-a", "pub")
    assert runtime.table.resolve("a.example.com", "internal").zone.owner == Owner("cluster-a")
    assert runtime.table.resolve("a.lab.example.com").zone.owner == Owner("cluster-a")


def test_check_names_overlapping_entries() -> None:
    """Same name: two entries without clients, one without beside one with, clients shared;
    and an entry naming an undefined client. Disjoint clients are fine."""
    data: dict[str, Any] = {
        "clients": [{"name": "a"}, {"name": "b"}],
        "accounts": [{"name": "m"}],
        "zones": [
            {"name": "one.test", "account": "m", "clients": ["a"]},
            {"name": "one.test", "account": "m", "clients": ["b"]},
            {"name": "two.test", "account": "m"},
            {"name": "two.test", "account": "m", "clients": ["a"]},
            {"name": "three.test", "account": "m", "clients": ["a", "b"]},
            {"name": "Three.test.", "account": "m", "clients": ["b", "c"]},
        ],
    }
    assert cross_check(data) == [
        (
            ("zones", 3, "name"),
            (
                "zone 'two.test' overlaps zones[2]: an entry without clients routes every "
                "client; name the clients of each entry"
            ),
        ),
        (
            ("zones", 5, "name"),
            (
                "zone 'three.test' overlaps zones[4] for client(s) b: the clients of two "
                "entries of one zone must not share a name"
            ),
        ),
        (
            ("zones", 5, "clients", 1),
            "zone 'Three.test.' routes client 'c', which is not defined (clients: a, b)",
        ),
    ]


def test_client_zones_count_only_entries_open_to_the_client() -> None:
    """A client allowed a zone that only another client's entry routes is reported."""
    data: dict[str, Any] = {
        "clients": [{"name": "a", "zones": ["one.test"]}, {"name": "b", "zones": ["one.test"]}],
        "accounts": [{"name": "m"}],
        "zones": [{"name": "one.test", "account": "m", "clients": ["a"]}],
    }
    assert cross_check(data) == [
        (
            ("clients", 1, "zones", 0),
            (
                "client 'b' may change 'one.test', but no zone routes it for this client (add "
                "it to the clients of the zone entry)"
            ),
        )
    ]


async def test_same_name_through_two_clients_lands_on_two_accounts(
    start_sidecar: StartSidecar, start_management: StartManagement
) -> None:
    """End to end: each client's upsert reaches its own account, the other holds nothing; a
    client's health covers its own routes; /status lists the routes per client."""
    runtime = _runtime()
    sidecar = await start_sidecar(runtime=runtime, secret=PUBLIC_SECRET)
    caller = sidecar.caller
    public = await caller.upsert("A", "example.com", "www", ["192.0.2.1"])
    internal = await caller.upsert(
        "A", "example.com", "www", ["10.0.0.1"], secret=INTERNAL_SECRET, algorithm=Algorithm.SHA512
    )
    assert (public.status, internal.status) == (200, 200)
    key = RecordKey.parse("A", "example.com", "www")
    cloud, home = (runtime.accounts[name].provider for name in ("cloud", "home"))
    zone = ZonePolicy(name="example.com")
    assert [(await p.get(zone, key)).values for p in (cloud, home)] == [  # type: ignore[union-attr]
        ("192.0.2.1",),
        ("10.0.0.1",),
    ]
    status = (await (await start_management(sidecar)).call("GET", "/status")).body
    assert status["routes"]["internal"] == [
        {
            "zone": "example.com",
            "account": "home",
            "provider": "memory",
            "owner": "dns-sidecar",
            "dnsClass": None,
        },
        {
            "zone": "lab.example.com",
            "account": "cloud",
            "provider": "memory",
            "owner": "dns-sidecar",
            "dnsClass": None,
        },
    ]
    assert [route["zone"] for route in status["routes"]["*"]] == ["lab.example.com"]
    assert status["zones"][0] == {"zone": "example.com", "account": "cloud", "clients": ["public"]}
