"""GET /health judged for its caller: the accounts its zones route to (SPEC section 3)."""

from __future__ import annotations

from typing import Any

from sidecar.app import LIVE
from sidecar.auth.clients import Client, ClientAuth
from sidecar.auth.signing import Algorithm
from sidecar.clock import FrozenClock
from sidecar.config.runtime import Runtime
from sidecar.health import accounts_for
from sidecar.providers.base import ROOT, Health, ZonePolicy
from sidecar.providers.memory import MemoryProvider
from sidecar.providers.ownership import Owner
from sidecar.routing.table import Account, Route, RoutingTable
from tests.builders import make_runtime
from tests.conftest import SECRET, StartManagement, StartSidecar

HOME_SECRET = b"home-secret"


class _Sick(MemoryProvider):
    """A memory account whose health check fails, counting the checks."""

    def __init__(self, why: str) -> None:
        super().__init__()
        self.why = why
        self.checks = 0

    async def health(self) -> Health:
        self.checks += 1
        return Health(healthy=False, message=self.why)


def _with_two_sick_accounts(*clients: Client) -> tuple[Runtime, dict[str, Any]]:
    providers: dict[str, Any] = {
        "personal": _Sick("token expired"),
        "lab": _Sick("snapshot not writable"),
        "home": MemoryProvider(),
    }
    zones = [("example.com", "personal"), ("lab.example.com", "lab"), ("home.example", "home")]
    return make_runtime(providers, zones, clients=clients), providers


CLOUDFLARE = Client.fixed("cloudflare", Algorithm.SHA256, (SECRET,), zones=("example.com",))
HOME = Client.fixed("home", Algorithm.SHA512, (HOME_SECRET,), zones=("home.example",))


async def test_health_is_judged_over_the_callers_accounts(start_sidecar: StartSidecar) -> None:
    """A caller whose zones are healthy is told so, whatever another caller's accounts say;
    the other caller hears which accounts fail and the zones they affect."""
    runtime, providers = _with_two_sick_accounts(CLOUDFLARE, HOME)
    caller = (await start_sidecar(runtime=runtime, secret=SECRET)).caller
    home = await caller.call("GET", "/health", secret=HOME_SECRET, algorithm=Algorithm.SHA512)
    assert (home.status, home.body["status"], home.body["message"]) == (
        200,
        "healthy",
        "DNS server is operational",
    )
    assert (providers["personal"].checks, providers["lab"].checks) == (0, 0)  # not asked
    cloudflare = await caller.call("GET", "/health")
    assert (cloudflare.status, cloudflare.body["status"], cloudflare.body["message"]) == (
        503,
        "unhealthy",
        (
            "Unhealthy accounts: lab (zones lab.example.com): snapshot not writable; personal "
            "(zones example.com): token expired"
        ),
    )


async def test_unsigned_health_on_loopback_judges_every_account(
    start_sidecar: StartSidecar,
) -> None:
    """An unsigned call cannot say who it is: every account is judged, each check cached."""
    unsigned = Client("open", ClientAuth, zones=("home.example",))
    runtime, providers = _with_two_sick_accounts(unsigned)
    clock = FrozenClock()
    caller = (await start_sidecar(runtime=runtime, clock=clock)).caller
    for _ in range(3):
        reply = await caller.call("GET", "/health", sign=False)
        assert (reply.status, reply.body["message"]) == (
            503,
            (
                "Unhealthy accounts: lab (zones lab.example.com): snapshot not writable; personal "
                "(zones example.com): token expired"
            ),
        )
    assert (providers["personal"].checks, providers["lab"].checks) == (1, 1)
    clock.advance(60)
    await caller.call("GET", "/health", sign=False)
    assert (providers["personal"].checks, providers["lab"].checks) == (2, 2)


def test_accounts_for_zones_above_below_and_uncovered() -> None:
    """A client zone reaches the account serving it and every account of a zone below it;
    a zone nobody serves reaches none; no zones: every account routed; the catch-all zone
    serves what is left."""
    runtime, _ = _with_two_sick_accounts()
    table, accounts = runtime.table, runtime.accounts
    assert sorted(accounts_for(table, ("example.com",), None)) == ["lab", "personal"]
    assert sorted(accounts_for(table, ("x.lab.example.com",), None)) == ["lab"]
    assert sorted(accounts_for(table, ("example.org",), None)) == []
    assert sorted(accounts_for(table, None, None)) == ["home", "lab", "personal"]
    catch_all = RoutingTable([*table, Route(ZonePolicy(name=ROOT), accounts["home"])])
    assert sorted(accounts_for(catch_all, ("example.org",), None)) == ["home"]


def test_accounts_for_follows_the_routes_open_to_the_client() -> None:
    """Split horizon: one zone name on two accounts, each open to one client; a client's
    health covers only the account its own route leads to."""
    accounts = {name: Account(name, MemoryProvider()) for name in ("public", "home")}
    table = RoutingTable(
        [
            Route(ZonePolicy(name="example.com"), accounts["public"], frozenset({"pub"})),
            Route(ZonePolicy(name="example.com"), accounts["home"], frozenset({"int"})),
        ],
        {"pub": Owner(), "int": Owner()},
    )
    assert list(accounts_for(table, ("example.com",), "pub")) == ["public"]
    assert list(accounts_for(table, None, "int")) == ["home"]
    assert list(accounts_for(table, None, None)) == []


async def test_status_drops_the_verdict_on_a_replaced_account(
    start_sidecar: StartSidecar, start_management: StartManagement
) -> None:
    """A reload replaces a failing account: /status no longer shows the old account's verdict
    (it says "not checked yet" until the new one is checked)."""
    runtime, _ = _with_two_sick_accounts(CLOUDFLARE)
    sidecar = await start_sidecar(runtime=runtime, secret=SECRET)
    assert (await sidecar.caller.call("GET", "/health")).status == 503  # personal: checked
    management = await start_management(sidecar)
    before = (await management.call("GET", "/status")).body["accounts"]["personal"]
    assert (before["healthy"], before["message"]) == (False, "token expired")
    sidecar.app[LIVE].swap(
        make_runtime({"personal": MemoryProvider()}, [("example.com", "personal")])
    )
    after = (await management.call("GET", "/status")).body["accounts"]["personal"]
    assert (after["healthy"], after["message"]) == (None, "not checked yet")
