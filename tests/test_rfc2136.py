"""The RFC 2136 provider against a real BIND: webhook -> sidecar -> dnspython -> named over TCP.

What the server holds is read back from it (queries, its SOA serial, its statistics channel's
count of QUERY and UPDATE messages), and changes by "someone else" are made with ``nsupdate``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import dns.message
import dns.name
import dns.query
import dns.rdatatype
import pytest
from prometheus_client import CollectorRegistry

from sidecar.app import DNS_RECORDS, SWEEPER
from sidecar.auth.clients import Client, ClientKind
from sidecar.clock import FrozenClock
from sidecar.config import loader
from sidecar.config.live import LiveConfig
from sidecar.config.runtime import Runtime, build
from sidecar.coordination.connection import RedisConnection
from sidecar.coordination.local import LocalTurns
from sidecar.coordination.metrics import CoordinationMetrics
from sidecar.coordination.redis_locks import RedisLocks
from sidecar.coordination.retries import Retries
from sidecar.dnsrecords.index import DnsRecordIndex
from sidecar.errors import ConfigError, ProviderError, RecordConflict
from sidecar.providers.base import Orphans, Outcome, Ownership, ZonePolicy
from sidecar.providers.ownership import Mark, Owner
from sidecar.providers.rfc2136.provider import Rfc2136Provider
from sidecar.providers.rfc2136.server import DnsServer, TsigKey
from sidecar.records import RecordKey, RecordSet
from sidecar.routing.table import Account, Route, RoutingTable
from sidecar.settings import SweepSettings
from sidecar.sweeps.sweeper import Sweeper
from tests.bind_server import KEY_NAME, BindServer
from tests.builders import dns_record_spec, local, operator_upsert
from tests.conftest import (
    Caller,
    RunningEmulator,
    RunningKube,
    StartSidecar,
    eventually,
    make_settings,
)
from tests.redis_server import RedisServer

ZONE = ZonePolicy(name="example.test")
MARKER = "managed by dns-sidecar (owner=dns-sidecar)"

ROUND_TRIPS: list[tuple[str, str, list[str]]] = [
    ("A", "www", ["192.0.2.1", "192.0.2.2"]),
    ("AAAA", "www", ["2001:db8::1"]),
    ("CNAME", "alias", ["target.example.net"]),
    ("TXT", "www", ["v=spf1 -all", "x" * 600, 'quote " and \\ backslash']),
    ("MX", "@", ["10 mail.example.net", "20 mx2.example.net"]),
    ("SRV", "_sip._tcp", ["10 5 5060 sip.example.test"]),
    ("CAA", "@", ['0 issue "letsencrypt.org"', '128 iodef "mailto:ops@example.test"']),
    ("NS", "delegated", ["ns1.example.net", "ns2.example.net"]),
]


def provider(
    bind: BindServer, *, secret: str | None = None, name: str = KEY_NAME
) -> Rfc2136Provider:
    key = TsigKey(name, "hmac-sha256", secret or bind.secret)
    server = DnsServer("home", bind.address, lambda: key, timeout=2.0)
    return Rfc2136Provider(server, locks=local().locks, zones=("example.test",))


def record(kind: str, sub: str, values: list[str], ttl: int = 300) -> RecordSet:
    return RecordSet.build(RecordKey.parse(kind, "example.test", sub), values, ttl)


def held(bind: BindServer, fqdn: str, kind: str) -> list[str]:
    """What the server answers for (name, type), each value in presentation form, sorted."""
    query = dns.message.make_query(fqdn, kind)
    reply = dns.query.tcp(query, "127.0.0.1", timeout=2, port=bind.port)
    sections = [*reply.answer, *reply.authority] if kind == "NS" else reply.answer
    name = dns.name.from_text(fqdn)
    rdtype = dns.rdatatype.from_text(kind)
    return sorted(
        rd.to_text()
        for rrset in sections
        if rrset.name == name and rrset.rdtype == rdtype
        for rd in rrset
    )


def table(bind: BindServer, *, tsig: str | None = None, zone_extra: str = "") -> str:
    secret = tsig or f"{{value: '{bind.secret}'}}"
    return f"""
version: 1
accounts:
  - name: home
    provider: rfc2136
    server: {bind.address}
    tsig: {{name: {KEY_NAME}, algorithm: hmac-sha256, secret: {secret}}}
zones:
  - name: example.test
    account: home
{zone_extra}
"""


def runtime_for(text: str, **settings: Any) -> Runtime:
    spec = loader.parse(text, "test.yaml")
    return build(spec, make_settings(**settings), source="test.yaml", coordination=local())


async def caller_for(start_sidecar: StartSidecar, text: str) -> Caller:
    return (await start_sidecar(runtime=runtime_for(text))).caller


@pytest.mark.parametrize(("kind", "sub", "values"), ROUND_TRIPS, ids=[r[0] for r in ROUND_TRIPS])
async def test_every_record_type_round_trips(
    bind: BindServer, kind: str, sub: str, values: list[str]
) -> None:
    """Created, read back equal in canonical form, then unchanged, then deleted (set and
    companion gone from the server)."""
    dns_provider = provider(bind)
    wanted = record(kind, sub, values, ttl=120)
    assert (await dns_provider.upsert(ZONE, wanted)).outcome is Outcome.CREATED
    found = await dns_provider.get(ZONE, wanted.key)
    assert found is not None
    assert (sorted(found.values), found.ttl) == (sorted(wanted.values), 120)
    assert (await dns_provider.upsert(ZONE, wanted)).outcome is Outcome.UNCHANGED
    assert (await dns_provider.delete(ZONE, wanted.key)).removed == len(wanted.values)
    assert await dns_provider.get(ZONE, wanted.key) is None
    assert held(bind, wanted.key.fqdn, kind) == []


async def test_long_txt_is_split_into_strings_and_joined_on_read(bind: BindServer) -> None:
    """A 600-byte TXT value is three character-strings on the server, one value on read."""
    dns_provider = provider(bind)
    text = "".join(chr(ord("a") + i % 26) for i in range(600))
    await dns_provider.upsert(ZONE, record("TXT", "long", [text]))
    query = dns.message.make_query("long.example.test", "TXT")
    reply = dns.query.tcp(query, "127.0.0.1", timeout=2, port=bind.port)
    assert [len(s) for s in reply.answer[0][0].strings] == [255, 255, 90]
    found = await dns_provider.get(ZONE, RecordKey.parse("TXT", "example.test", "long"))
    assert found is not None
    assert found.values == (text,)


async def test_one_update_per_change_and_none_when_unchanged(bind: BindServer) -> None:
    """A changed upsert: 1 query + 1 UPDATE, serial +1; unchanged: no UPDATE and 1 query (the
    companion this process wrote is remembered as ours), or 2 for a process that remembers
    nothing (another replica: the companion is read); serial unmoved; the companion holds the
    owner's marker."""
    dns_provider = provider(bind)
    serial, before = bind.serial(), bind.counters()
    assert (await dns_provider.upsert(ZONE, record("A", "www", ["192.0.2.1"]))).outcome is (
        Outcome.CREATED
    )
    after = bind.counters()
    assert (after["QUERY"] - before["QUERY"], after["UPDATE"] - before["UPDATE"]) == (1, 1)
    assert bind.serial() == serial + 1
    before = bind.counters()
    assert (await dns_provider.upsert(ZONE, record("A", "www", ["192.0.2.1"]))).outcome is (
        Outcome.UNCHANGED
    )
    after = bind.counters()
    assert (after["QUERY"] - before["QUERY"], after["UPDATE"] - before["UPDATE"]) == (1, 0)
    before = bind.counters()
    assert (await provider(bind).upsert(ZONE, record("A", "www", ["192.0.2.1"]))).outcome is (
        Outcome.UNCHANGED
    )
    after = bind.counters()
    assert (after["QUERY"] - before["QUERY"], after["UPDATE"] - before["UPDATE"]) == (2, 0)
    assert bind.serial() == serial + 1
    assert (await dns_provider.upsert(ZONE, record("A", "www", ["192.0.2.2"]))).outcome is (
        Outcome.UPDATED
    )
    assert bind.serial() == serial + 2
    assert held(bind, "www.example.test", "A") == ["192.0.2.2"]
    assert held(bind, "_dns-sidecar-a-www.example.test", "TXT") == [f'"{MARKER}"']


async def test_concurrent_upserts_replace_never_merge(bind: BindServer) -> None:
    """32 concurrent upserts of different sets to one name: the server ends holding exactly one
    of them, and the serial moved once per change."""
    dns_provider = provider(bind)
    sets = [[f"192.0.2.{i}", f"198.51.100.{i}"] for i in range(1, 33)]
    serial = bind.serial()
    results = await asyncio.gather(
        *(dns_provider.upsert(ZONE, record("A", "busy", values)) for values in sets)
    )
    final = held(bind, "busy.example.test", "A")
    assert final in [sorted(values) for values in sets]
    changes = sum(r.outcome is not Outcome.UNCHANGED for r in results)
    assert (changes, bind.serial()) == (32, serial + 32)


async def test_foreign_record_is_refused_and_left_in_place(bind: BindServer) -> None:
    """A set made with nsupdate (no companion) is a 409 under strict, and a delete leaves it."""
    bind.nsupdate("update add theirs.example.test 300 A 192.0.2.9")
    dns_provider = provider(bind)
    with pytest.raises(RecordConflict) as refused:
        await dns_provider.upsert(ZONE, record("A", "theirs", ["192.0.2.1"]))
    assert refused.value.message == (
        "theirs.example.test has A records not managed by dns-sidecar (no companion record "
        "_dns-sidecar-a-theirs.example.test TXT with this deployment's marker): 192.0.2.9. "
        "Remove them, or set ownership: adopt for this zone."
    )
    with pytest.raises(RecordConflict):  # equal values are not "unchanged" either
        await dns_provider.upsert(ZONE, record("A", "theirs", ["192.0.2.9"]))
    deleted = await dns_provider.delete(ZONE, RecordKey.parse("A", "example.test", "theirs"))
    assert (deleted.removed, deleted.left) == (0, ("A 192.0.2.9",))
    assert held(bind, "theirs.example.test", "A") == ["192.0.2.9"]


async def test_another_owner_is_foreign_and_adopt_takes_over(bind: BindServer) -> None:
    """A set another deployment wrote is refused under strict; adopt replaces it and writes
    this owner's marker; off changes it without reading any marker."""
    other = ZonePolicy(name="example.test", owner=Owner("cluster-b", "public"))
    dns_provider = provider(bind)
    await dns_provider.upsert(other, record("A", "shared", ["192.0.2.1"]))
    with pytest.raises(RecordConflict):
        await dns_provider.upsert(ZONE, record("A", "shared", ["192.0.2.2"]))
    adopt = ZonePolicy(name="example.test", ownership=Ownership.ADOPT)
    assert (await dns_provider.upsert(adopt, record("A", "shared", ["192.0.2.1"]))).outcome is (
        Outcome.UPDATED
    )  # same values, marker rewritten
    assert held(bind, "_dns-sidecar-a-shared.example.test", "TXT") == [f'"{MARKER}"']
    assert (await dns_provider.upsert(ZONE, record("A", "shared", ["192.0.2.1"]))).outcome is (
        Outcome.UNCHANGED
    )
    bind.nsupdate("update add loose.example.test 300 A 192.0.2.7")
    off = ZonePolicy(name="example.test", ownership=Ownership.OFF)
    assert (await dns_provider.upsert(off, record("A", "loose", ["192.0.2.7"]))).outcome is (
        Outcome.UNCHANGED
    )
    assert (await dns_provider.delete(off, RecordKey.parse("A", "example.test", "loose"))).removed


async def test_marker_from_before_owners_is_ours_and_rewritten(bind: BindServer) -> None:
    """A companion holding the bare comment (legacy) is writable: an upsert replaces the set
    and writes the marker in the new form."""
    bind.nsupdate(
        "update add old.example.test 300 A 192.0.2.1",
        'update add _dns-sidecar-a-old.example.test 300 TXT "managed by dns-sidecar"',
    )
    dns_provider = provider(bind)
    assert (await dns_provider.upsert(ZONE, record("A", "old", ["192.0.2.2"]))).outcome is (
        Outcome.UPDATED
    )
    assert held(bind, "_dns-sidecar-a-old.example.test", "TXT") == [f'"{MARKER}"']
    bind.nsupdate('update add _dns-sidecar-a-old.example.test 300 TXT "managed by dns-sidecar"')
    bind.nsupdate(f'update delete _dns-sidecar-a-old.example.test TXT "{MARKER}"')
    # a process that has not written it (another replica, a restart) reads the companion
    assert (await provider(bind).upsert(ZONE, record("A", "old", ["192.0.2.2"]))).outcome is (
        Outcome.UPDATED
    )  # unchanged values, legacy marker: rewritten


async def test_change_between_read_and_write_is_a_conflict(bind: BindServer) -> None:
    """Someone changes the set after the sidecar read it: the server refuses the UPDATE on its
    prerequisite (409), and their change stays."""
    dns_provider = provider(bind)
    await dns_provider.upsert(ZONE, record("A", "race", ["192.0.2.1"]))
    send = dns_provider.server.update

    async def meddled(message: Any) -> int:
        bind.nsupdate("update add race.example.test 300 A 192.0.2.66")
        return await send(message)

    dns_provider.server.update = meddled  # type: ignore[method-assign]
    with pytest.raises(RecordConflict) as refused:
        await dns_provider.upsert(ZONE, record("A", "race", ["192.0.2.2"]))
    assert refused.value.details["rcode"] == "NXRRSET"
    assert held(bind, "race.example.test", "A") == ["192.0.2.1", "192.0.2.66"]


async def test_cname_beside_other_data_is_a_conflict(bind: BindServer) -> None:
    """A beside a CNAME, and a CNAME beside A, are 409 (the server would silently ignore them)."""
    dns_provider = provider(bind)
    await dns_provider.upsert(ZONE, record("CNAME", "alias", ["target.example.net"]))
    with pytest.raises(RecordConflict) as beside_cname:
        await dns_provider.upsert(ZONE, record("A", "alias", ["192.0.2.1"]))
    assert beside_cname.value.message == (
        "Cannot put A at alias.example.test: CNAME target.example.net already there, and a "
        "CNAME cannot share its name with other records."
    )
    await dns_provider.upsert(ZONE, record("A", "host", ["192.0.2.1"]))
    with pytest.raises(RecordConflict) as beside_a:
        await dns_provider.upsert(ZONE, record("CNAME", "host", ["target.example.net"]))
    assert beside_a.value.details["rcode"] == "YXDOMAIN"
    assert held(bind, "host.example.test", "A") == ["192.0.2.1"]


async def test_wildcard_names_and_their_companions(bind: BindServer) -> None:
    """A wildcard set gets a sibling companion, and the wildcard still answers other names."""
    dns_provider = provider(bind)
    await dns_provider.upsert(ZONE, record("A", "*.apps", ["192.0.2.5"]))
    assert held(bind, "anything.apps.example.test", "A") == ["192.0.2.5"]
    assert held(bind, "_dns-sidecar-a-*.apps.example.test", "TXT") == [f'"{MARKER}"']
    await dns_provider.upsert(ZONE, record("A", "www", ["192.0.2.6"]))
    await dns_provider.upsert(ZONE, record("A", "*.www", ["192.0.2.7"]))
    assert held(bind, "a.www.example.test", "A") == ["192.0.2.7"]  # no companion below www


async def test_errors_say_what_to_check(bind: BindServer, start_sidecar: StartSidecar) -> None:
    """Through the webhook: a wrong secret and an unknown key are 502 naming the TSIG error and
    what to check; no key at all is REFUSED (502, the update-policy); a bad value is 400."""
    wrong = await caller_for(start_sidecar, table(bind, tsig="{value: 'c2VjcmV0'}"))
    reply = await wrong.upsert("A", "example.test", "www", ["192.0.2.1"])
    assert (reply.status, reply.code) == (502, "PROVIDER_ERROR")
    assert reply.message == (
        f"Account 'home': DNS server {bind.address} refused the TSIG signature of the query "
        "www.example.test. A (BADSIG: the secret does not match): check the key name, "
        "algorithm and secret against the server's key (and the clocks, for a bad time)."
    )
    unsigned = await caller_for(
        start_sidecar,
        f"version: 1\naccounts: [{{name: home, provider: rfc2136, server: '{bind.address}'}}]\n"
        "zones: [{name: example.test, account: home}]\n",
    )
    refused = await unsigned.upsert("A", "example.test", "www", ["192.0.2.1"])
    assert (refused.status, refused.body["error"]["details"]["rcode"]) == (502, "REFUSED")
    assert "update-policy" in refused.message
    good = await caller_for(start_sidecar, table(bind))
    invalid = await good.upsert("A", "example.test", "www", ["not-an-address"])
    assert (invalid.status, invalid.code) == (400, "INVALID_RECORD")


async def test_unknown_key_is_badkey(bind: BindServer) -> None:
    """A key name the server does not know: 502 with BADKEY."""
    with pytest.raises(ProviderError) as refused:
        await provider(bind, name="nobody").get(ZONE, RecordKey.parse("A", "example.test", "x"))
    assert refused.value.details["tsig"].startswith("BADKEY")


async def test_server_down_is_503_then_back_without_a_restart(
    bind: BindServer, start_sidecar: StartSidecar
) -> None:
    """named stopped: 503 PROVIDER_UNAVAILABLE and /health unhealthy; started again on the same
    port: the same sidecar serves again."""
    sidecar = await start_sidecar(runtime=runtime_for(table(bind)), settings=None)
    caller = sidecar.caller
    assert (await caller.upsert("A", "example.test", "www", ["192.0.2.1"])).status == 200
    bind.stop()
    down = await caller.upsert("A", "example.test", "www", ["192.0.2.2"])
    assert (down.status, down.code) == (503, "PROVIDER_UNAVAILABLE")
    assert f"DNS server {bind.address} is unreachable" in down.message
    health = await caller.call("GET", "/health")
    assert (health.status, health.body["status"]) == (503, "unhealthy")
    bind.start()
    back = await caller.upsert("A", "example.test", "www", ["192.0.2.2"])
    assert (back.status, back.body["message"]) == (200, "Record updated successfully")
    got = await caller.call("GET", "/records/A/example.test/www")
    assert got.body["record"]["values"] == ["192.0.2.2"]


async def test_health_is_one_soa_query_per_zone(bind: BindServer) -> None:
    """Health asks each zone routed to the account for its SOA, once, and names the serials."""
    dns_provider = provider(bind)
    before = bind.counters()["QUERY"]
    health = await dns_provider.health()
    assert (health.healthy, health.message) == (
        True,
        f"DNS server {bind.address} answers: example.test serial 1",
    )
    assert bind.counters()["QUERY"] - before == 1
    elsewhere = Rfc2136Provider(dns_provider.server, locks=local().locks, zones=("nope.test",))
    sick = await elsewhere.health()
    assert sick.healthy is False


async def test_routed_root_zone_is_refused_with_the_reason(bind: BindServer) -> None:
    """An UPDATE names its zone: the catch-all '.' cannot be one (502 saying what to do)."""
    with pytest.raises(ProviderError) as refused:
        await provider(bind).get(ZonePolicy(name="."), RecordKey.parse("A", "example.test", "x"))
    assert "give the DNS zone's own name" in refused.value.message


async def test_tsig_secret_from_a_secret_rotated_live(
    bind: BindServer, kube: RunningKube, start_sidecar: StartSidecar, tmp_path: Path
) -> None:
    """The TSIG secret comes from a Kubernetes Secret (real kubernetes_asyncio, fake API
    server); a wrong one is 502, the rotated right one works on a later request, no restart."""
    kube.fake.set_secret("dns-system", "home-dns-tsig", {"secret": "c2VjcmV0"})
    path = tmp_path / "routing.yaml"
    path.write_text(table(bind, tsig="{secretRef: {name: home-dns-tsig, key: secret}}"))
    settings = make_settings(
        table={"config": path},
        kubernetes={"kubeconfig": kube.kubeconfig, "namespace": "dns-system"},
    )
    caller = (await start_sidecar(settings)).caller
    first = await caller.upsert("A", "example.test", "www", ["192.0.2.1"])
    assert (first.status, first.code) == (502, "PROVIDER_ERROR")
    kube.fake.set_secret("dns-system", "home-dns-tsig", {"secret": bind.secret})

    async def accepted() -> bool:
        reply = await caller.upsert("A", "example.test", "www", ["192.0.2.1"])
        return reply.status == 200

    await eventually(accepted)
    assert held(bind, "www.example.test", "A") == ["192.0.2.1"]


async def test_held_lists_the_zone_by_one_axfr_with_marks(bind: BindServer) -> None:
    """One AXFR per listing: our sets with this owner's mark, foreign sets with none (data no
    request could spell as the server holds it), the companions, SOA and apex NS left out."""
    dns_provider = provider(bind)
    public = ZonePolicy(name="example.test", owner=Owner("dns-sidecar", "public"))
    await dns_provider.upsert(public, record("A", "www", ["192.0.2.1"]))
    await dns_provider.upsert(ZONE, record("TXT", "*.apps", ["hello"], ttl=60))
    bind.nsupdate(
        "update add theirs.example.test 300 A 192.0.2.9",
        'update add odd.example.test 300 TXT "a\\001b"',  # no request could spell it
    )
    before = bind.counters()
    listed = sorted(await dns_provider.held(ZONE), key=lambda h: (h.fqdn, h.type))
    assert bind.counters()["AXFR"] - before["AXFR"] == 1
    assert [(h.type, h.fqdn, h.values, h.ttl, h.mark, h.foreign) for h in listed] == [
        ("TXT", "*.apps.example.test", ("hello",), 60, Mark("dns-sidecar"), ()),
        ("A", "ns.example.test", (), 300, None, ("127.0.0.1",)),
        ("TXT", "odd.example.test", (), 300, None, ("a\x01b",)),
        ("A", "theirs.example.test", (), 300, None, ("192.0.2.9",)),
        ("A", "www.example.test", ("192.0.2.1",), 300, Mark("dns-sidecar", "public"), ()),
    ]


async def test_refused_transfer_is_reported_by_the_sweep(bind: BindServer) -> None:
    """A zone that refuses AXFR: the listing is a 502 naming allow-transfer, and the sweep
    shows it on the zone and decides nothing there."""
    closed = ZonePolicy(name="closed.test", orphans=Orphans.PRUNE)
    dns_provider = provider(bind)
    await dns_provider.upsert(
        closed, RecordSet.build(RecordKey.parse("A", "closed.test", "old"), ["192.0.2.1"], 300)
    )
    with pytest.raises(ProviderError) as refused:
        await dns_provider.held(closed)
    assert refused.value.message == (
        f"Account 'home': DNS server {bind.address} answered REFUSED to the zone transfer "
        "(AXFR) of closed.test.: allow-transfer (or the server's ACL) must let this key "
        "transfer the zone."
    )
    client = Client("public", kind=ClientKind.DNS_CLASS, dns_class="public")
    account = Account("home", dns_provider)
    runtime = Runtime(
        source="test",
        table=RoutingTable([Route(closed, account)], {"public": Owner("dns-sidecar", "public")}),
        clients=(client,),
        accounts={"home": account},
    )
    index = DnsRecordIndex()
    index.serve(["public"], [])
    index.replace(None, [])
    index.connected(None)
    sweeper = Sweeper(
        LiveConfig(runtime),
        index,
        SweepSettings(interval=300, orphan_grace=1),
        deployment="dns-sidecar",
        clock=FrozenClock(),
        turns=LocalTurns(),
    )
    sweep = await sweeper.sweep(act=True)
    assert (sweep.complete, sweep.done) == (False, [])
    assert [(z.zone, z.error) for z in sweep.zones] == [("closed.test", refused.value.message)]
    assert held(bind, "old.closed.test", "A") == ["192.0.2.1"]


def test_table_problems_of_rfc2136_accounts() -> None:
    """A bad server, an unknown TSIG algorithm, a missing secret, and '.' routed to the account
    are each named with their key path."""
    with pytest.raises(ConfigError) as failed:
        loader.parse(
            "version: 1\naccounts:\n"
            "  - {name: a, provider: rfc2136, server: 'dns:port'}\n"
            "  - {name: b, provider: rfc2136, server: dns.home.lan,\n"
            "     tsig: {name: k, algorithm: hmac-md5, secret: {value: x}}}\n"
            "  - {name: c, provider: rfc2136, server: '[2001:db8::53]:5353', tsig: {name: k}}\n"
            "zones: [{name: '.', account: b}, {name: c.test, account: c}]\n",
            "t.yaml",
        )
    assert failed.value.problems == [
        (
            "accounts[0].server (line 3): expected host or host:port (port 1-65535), like "
            "192.0.2.53:53"
        ),
        (
            "accounts[1].tsig.algorithm (line 5): Input should be 'hmac-sha224', 'hmac-sha256', "
            "'hmac-sha384' or 'hmac-sha512'"
        ),
        "accounts[2].tsig.secret (line 6): required key is missing",
        (
            "zones[0].name (line 7): zone '.' routes to rfc2136 account 'b': a DNS UPDATE names "
            "its zone, so name each DNS zone the server holds (home.example.com, ...)"
        ),
    ]


async def test_split_horizon_one_name_two_providers(
    bind: BindServer, cf: RunningEmulator, start_sidecar: StartSidecar
) -> None:
    """example.test for client 'public' is at Cloudflare (the emulator), for client 'internal'
    on BIND: the same name through each client lands on its own provider, each marked with its
    client reads back its own view."""
    cf.emulator.state.add_zone("example.test", "c" * 32)
    text = f"""
version: 1
clients:
  - {{name: public, secrets: [{{value: public-secret}}]}}
  - {{name: internal, secrets: [{{value: internal-secret}}]}}
accounts:
  - {{name: cloud, provider: cloudflare, apiToken: {{value: cf-token}}, baseUrl: '{cf.base_url}'}}
  - name: home
    provider: rfc2136
    server: '{bind.address}'
    tsig: {{name: {KEY_NAME}, secret: {{value: '{bind.secret}'}}}}
zones:
  - {{name: example.test, account: cloud, clients: [public]}}
  - {{name: example.test, account: home, clients: [internal]}}
"""
    caller = (await start_sidecar(runtime=runtime_for(text))).caller
    public = await caller.upsert(
        "A", "example.test", "www", ["203.0.113.1"], secret=b"public-secret"
    )
    internal = await caller.upsert(
        "A", "example.test", "www", ["10.0.0.1"], secret=b"internal-secret"
    )
    assert (public.status, internal.status) == (200, 200)
    assert [r["content"] for r in cf.records("example.test")] == ["203.0.113.1"]
    assert held(bind, "www.example.test", "A") == ["10.0.0.1"]
    views = [
        (await caller.call("GET", "/records/A/example.test/www", secret=secret)).body["record"][
            "values"
        ]
        for secret in (b"public-secret", b"internal-secret")
    ]
    assert views == [["203.0.113.1"], ["10.0.0.1"]]


async def test_two_replicas_serialise_on_the_redis_lock(
    bind: BindServer, redis_server: RedisServer
) -> None:
    """Two replicas (each its own Redis connection and lock) upserting one name at once: every
    write waits its turn (none is refused on a prerequisite), one per change moves the serial,
    and the name ends holding exactly one of the sets."""
    connections = [
        RedisConnection(
            redis_server.url,
            prefix="t",
            timeout=1.0,
            clock=FrozenClock(),
            metrics=CoordinationMetrics(CollectorRegistry()),
        )
        for _ in range(2)
    ]
    key = TsigKey(KEY_NAME, "hmac-sha256", bind.secret)
    replicas = [
        Rfc2136Provider(
            DnsServer("home", bind.address, lambda: key, timeout=2.0),
            locks=RedisLocks(connection, lease=10, wait=20, retries=Retries(1)),
        )
        for connection in connections
    ]
    sets = [[f"192.0.2.{i}"] for i in range(1, 17)]
    serial = bind.serial()
    try:
        results = await asyncio.gather(
            *(replicas[i % 2].upsert(ZONE, record("A", "shared", v)) for i, v in enumerate(sets))
        )
    finally:
        for connection in connections:
            await connection.aclose()
    assert [r.outcome is not Outcome.UNCHANGED for r in results] == [True] * 16
    assert bind.serial() == serial + 16
    assert held(bind, "shared.example.test", "A") in [sorted(v) for v in sets]


async def test_a_renamed_record_on_bind_is_pruned_by_the_sweep(
    bind: BindServer, kube: RunningKube, start_sidecar: StartSidecar, tmp_path: Path
) -> None:
    """End to end on BIND: the operator renames a DNSRecord (upserts the new name, never deletes
    the old); the sweep lists the zone by one AXFR, finds the old set by its companion's marker
    (DNSClass public), and prunes it, companion and all, once the grace has passed."""
    kube.fake.set_dns_class("public", {"server": "http://127.0.0.1:7100", "defaultTTL": 300})
    old = dns_record_spec("A", "example.test", "old", ["192.0.2.1"], "public")
    kube.fake.set_dns_record("apps", "web", old)
    path = tmp_path / "routing.yaml"
    path.write_text(
        table(bind, zone_extra="    orphans: prune\n").replace(
            "accounts:", "clients: [{name: public, dnsClass: public}]\naccounts:"
        )
    )
    settings = make_settings(
        table={"config": path},
        kubernetes={"kubeconfig": kube.kubeconfig},
        sweeps={"interval": 300, "orphan_grace": 600},
    )
    clock = FrozenClock()
    sidecar = await start_sidecar(settings, clock=clock)
    index = sidecar.app[DNS_RECORDS]
    await eventually(lambda: index.synced)
    dns_class = {"defaultTTL": 300}
    assert (
        await sidecar.caller.call("POST", "/records", operator_upsert(old, dns_class))
    ).status == 200
    new = dns_record_spec("A", "example.test", "new", ["192.0.2.1"], "public")
    kube.fake.set_dns_record("apps", "web", new)
    await eventually(lambda: [r.key.fqdn for r in index.wanted("public")] == ["new.example.test"])
    assert (
        await sidecar.caller.call("POST", "/records", operator_upsert(new, dns_class))
    ).status == 200
    assert held(bind, "_dns-sidecar-a-old.example.test", "TXT") == [
        '"managed by dns-sidecar (owner=dns-sidecar, class=public)"'
    ]
    before = bind.counters()["AXFR"]
    first = await sidecar.app[SWEEPER].sweep(act=True)
    assert [(f.kind.value, f.fqdn) for f in first.findings] == [("orphan", "old.example.test")]
    assert (first.done, bind.counters()["AXFR"] - before) == ([], 1)
    clock.advance(600)
    second = await sidecar.app[SWEEPER].sweep(act=True)
    assert [(f.fqdn, what) for f, what in second.done] == [
        ("old.example.test", "pruned (1 value(s) removed)")
    ]
    assert held(bind, "old.example.test", "A") == []
    assert held(bind, "_dns-sidecar-a-old.example.test", "TXT") == []
    assert held(bind, "new.example.test", "A") == ["192.0.2.1"]
