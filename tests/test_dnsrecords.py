"""MX and SRV from the operator's DNSRecords, end to end: the real kubernetes_asyncio client
against the fake API server (DNSRecords listed and watched across namespaces or in listed ones,
read by name), the operator's payloads as its client builds them, on the memory provider and on
Cloudflare through the emulator with the real SDK.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from sidecar.app import BARE_VALUES, DNS_RECORDS
from sidecar.dnsrecords.index import DnsRecordIndex
from sidecar.dnsrecords.wanted import RecordMetadata
from sidecar.errors import InvalidRecord
from sidecar.records import RecordKey
from tests.builders import dns_record_spec, operator_upsert
from tests.conftest import (
    ProtocolReply,
    RunningEmulator,
    RunningKube,
    Sidecar,
    StartManagement,
    StartSidecar,
    eventually,
    make_settings,
)

PUBLIC = {"server": "http://127.0.0.1:7100", "defaultTTL": 600}  # no hmacAuth: unsigned, loopback
MX = dns_record_spec(
    "MX", "example.com", "@", ["mail.example.com", "mail2.example.com"], "public",
    metadata={"priority": 10}, description="mail for the apex",
)  # fmt: skip
SRV = dns_record_spec(
    "SRV", "example.com", "_sip._tcp", ["sip.example.com"], "public", ttl=120,
    metadata={"priority": 10, "weight": 5, "port": 5060},
)  # fmt: skip
MX_KEY = RecordKey.parse("MX", "example.com", "@")


def memory_table() -> str:
    return """
version: 1
clients:
  - {name: public, dnsClass: public}
accounts: [{name: m, provider: memory}]
zones: [{name: example.com, account: m}]
"""


def cloudflare_table(cf: RunningEmulator) -> str:
    return f"""
version: 1
clients:
  - {{name: public, dnsClass: public}}
accounts:
  - {{name: cf, provider: cloudflare, apiToken: {{value: cf-token}}, baseUrl: {cf.base_url}}}
zones: [{{name: example.com, account: cf}}]
"""


async def start(
    start_sidecar: StartSidecar,
    kube: RunningKube,
    tmp_path: Path,
    table: str,
    **kubernetes: Any,
) -> Sidecar:
    """A sidecar reading the fake cluster's DNSRecords; returns once they are listed and
    watched."""
    path = tmp_path / "routing.yaml"
    path.write_text(table)
    settings = make_settings(
        table={"config": path}, kubernetes={"kubeconfig": kube.kubeconfig, **kubernetes}
    )
    sidecar = await start_sidecar(settings)
    await eventually(lambda: index(sidecar).synced)
    return sidecar


def index(sidecar: Sidecar) -> DnsRecordIndex:
    return sidecar.app[DNS_RECORDS]


async def send(sidecar: Sidecar, spec: dict[str, Any]) -> ProtocolReply:
    """The operator's upsert for a DNSRecord with ``spec`` of DNSClass public."""
    return await sidecar.caller.call("POST", "/records", operator_upsert(spec, PUBLIC))


@pytest.fixture(params=["memory", "cloudflare"])
def table(request: pytest.FixtureRequest, cf: RunningEmulator) -> str:
    return memory_table() if request.param == "memory" else cloudflare_table(cf)


async def test_mx_and_srv_as_the_operator_sends_them(
    kube: RunningKube, start_sidecar: StartSidecar, tmp_path: Path, table: str
) -> None:
    """A DNSRecord's bare MX hosts and SRV target, sent as the operator's client sends them
    (no metadata), are published with the priority, weight and port of the DNSRecord."""
    kube.fake.set_dns_class("public", PUBLIC)
    kube.fake.set_dns_record("mail", "mx", MX)
    kube.fake.set_dns_record("voip", "sip", SRV)
    sidecar = await start(start_sidecar, kube, tmp_path, table)
    mx, srv = await send(sidecar, MX), await send(sidecar, SRV)
    assert (mx.status, mx.body["record"], mx.body["message"]) == (
        200,
        {
            "type": "MX",
            "domain": "example.com",
            "subdomain": "@",
            "fqdn": "example.com",
            "values": ["10 mail.example.com", "10 mail2.example.com"],
            "ttl": 600,  # the DNSClass's defaultTTL, as the operator sends it
        },
        "Record created successfully",
    )
    assert (srv.status, srv.body["record"]["values"], srv.body["record"]["ttl"]) == (
        200,
        ["10 5 5060 sip.example.com"],
        120,
    )
    got = await sidecar.caller.call("GET", "/records/SRV/example.com/_sip._tcp")
    assert got.body["record"]["values"] == ["10 5 5060 sip.example.com"]
    again = await send(sidecar, MX)  # the operator's resync: nothing to do
    assert again.body["message"] == "Record unchanged (already up to date)"
    assert kube.fake.gets == 3  # one read by name per bare upsert; none for the GET


async def test_the_published_cloudflare_records_carry_the_numbers(
    kube: RunningKube, start_sidecar: StartSidecar, tmp_path: Path, cf: RunningEmulator
) -> None:
    """At Cloudflare the MX priority lands in ``priority`` and the SRV numbers in ``data``."""
    kube.fake.set_dns_class("public", PUBLIC)
    kube.fake.set_dns_record("mail", "mx", MX)
    kube.fake.set_dns_record("voip", "sip", SRV)
    sidecar = await start(start_sidecar, kube, tmp_path, cloudflare_table(cf))
    assert [(await send(sidecar, spec)).status for spec in (MX, SRV)] == [200, 200]
    published = {
        (r["type"], r["content"], r.get("priority"), str(r.get("data") or ""))
        for r in cf.records("example.com")
    }
    assert published == {
        ("MX", "mail.example.com", 10, ""),
        ("MX", "mail2.example.com", 10, ""),
        ("SRV", "5 5060 sip.example.com", 10, str(published_srv_data(cf))),
    }


def published_srv_data(cf: RunningEmulator) -> Any:
    (srv,) = [r for r in cf.records("example.com") if r["type"] == "SRV"]
    assert (srv["data"]["priority"], srv["data"]["weight"], srv["data"]["port"]) == (10, 5, 5060)
    return srv["data"]


async def test_a_priority_edit_followed_at_once_by_an_upsert_lands(
    kube: RunningKube, start_sidecar: StartSidecar, tmp_path: Path, table: str
) -> None:
    """The operator upserts as soon as it sees an edit, while the sidecar's watch may still
    hold the old copy: the DNSRecord is read as it is now, so the new priority lands."""
    kube.fake.set_dns_class("public", PUBLIC)
    kube.fake.set_dns_record("mail", "mx", MX)
    sidecar = await start(start_sidecar, kube, tmp_path, table)
    assert (await send(sidecar, MX)).body["message"] == "Record created successfully"
    kube.fake.hold()  # the watch lags: the edit is in the API server, not yet in the watch
    edited = MX | {"metadata": {"priority": 20}}
    kube.fake.set_dns_record("mail", "mx", edited)
    reply = await send(sidecar, edited)
    assert (reply.body["message"], reply.body["record"]["values"]) == (
        "Record updated successfully",
        ["20 mail.example.com", "20 mail2.example.com"],
    )
    (stale,) = index(sidecar).at("public", MX_KEY)
    assert stale.metadata == RecordMetadata(priority=10)  # what the watch still held
    kube.fake.release()
    await eventually(lambda: index(sidecar).at("public", MX_KEY)[0].metadata.priority == 20)


async def test_a_dnsrecord_not_yet_delivered_is_waited_for(
    kube: RunningKube, start_sidecar: StartSidecar, tmp_path: Path
) -> None:
    """An upsert for a DNSRecord the watch has not delivered yet waits for it, then lands."""
    kube.fake.set_dns_class("public", PUBLIC)
    sidecar = await start(start_sidecar, kube, tmp_path, memory_table(), dnsrecord_wait=10)
    kube.fake.hold()
    kube.fake.set_dns_record("mail", "mx", MX)
    upsert = asyncio.ensure_future(send(sidecar, MX))
    await eventually(lambda: sidecar.app[BARE_VALUES].waiting == 1)
    assert not upsert.done()
    kube.fake.release()
    reply = await upsert
    assert (reply.status, reply.body["record"]["values"]) == (
        200,
        ["10 mail.example.com", "10 mail2.example.com"],
    )


async def test_a_missing_dnsrecord_is_named_with_the_remedies(
    kube: RunningKube, start_sidecar: StartSidecar, tmp_path: Path
) -> None:
    """No DNSRecord at the key (within the wait): 400 INVALID_RECORD naming what was looked
    for and the two remedies; a DNSRecord of another class at that key does not count."""
    kube.fake.set_dns_class("public", PUBLIC)
    kube.fake.set_dns_record("mail", "other", MX | {"dnsClassRef": {"name": "internal"}})
    sidecar = await start(start_sidecar, kube, tmp_path, memory_table(), dnsrecord_wait=0.2)
    reply = await send(sidecar, MX)
    assert (reply.status, reply.code, reply.message) == (
        400,
        "INVALID_RECORD",
        (
            "The MX value(s) 'mail.example.com', 'mail2.example.com' at example.com carry no "
            "priority, and no DNSRecord of DNSClass public with type MX, domain example.com and "
            "subdomain @ was found within 0.2 s. Either check that the DNSRecord exists, and that "
            "the sidecar may read it (get, list and watch on dnsrecords (a ClusterRole)), or send "
            "'priority host' values (like '10 mail.example.com')."
        ),
    )
    full = await sidecar.caller.upsert("MX", "example.com", "@", ["10 mail.example.com"])
    assert full.status == 200  # the full form needs no DNSRecord


async def test_two_dnsrecords_with_different_metadata_conflict(
    kube: RunningKube, start_sidecar: StartSidecar, tmp_path: Path
) -> None:
    """Two DNSRecords of one DNSClass at one key with different priorities: 409 naming both;
    with the same priority they agree and the upsert lands."""
    kube.fake.set_dns_class("public", PUBLIC)
    kube.fake.set_dns_record("mail", "mx", MX)
    kube.fake.set_dns_record("team", "mx-too", MX | {"metadata": {"priority": 30}})
    sidecar = await start(start_sidecar, kube, tmp_path, memory_table())
    reply = await send(sidecar, MX)
    assert (reply.status, reply.code, reply.body["error"]["details"]["dnsRecords"]) == (
        409,
        "RECORD_CONFLICT",
        ["mail/mx", "team/mx-too"],
    )
    assert reply.message == (
        "DNSRecord mail/mx and DNSRecord team/mx-too of DNSClass public all want MX example.com "
        "with different metadata (DNSRecord mail/mx: priority=10; DNSRecord team/mx-too: "
        "priority=30): keep one DNSRecord per name and type, or give them the same metadata."
    )
    kube.fake.set_dns_record("team", "mx-too", MX)
    assert (await send(sidecar, MX)).status == 200


async def test_bare_values_without_kubernetes_name_the_remedies(
    start_sidecar: StartSidecar,
) -> None:
    """No dnsClass client (the embedded default): 'priority host' values work as before; a
    bare host is refused, saying how to make it work."""
    sidecar = await start_sidecar()
    full = await sidecar.caller.upsert("SRV", "example.com", "_sip._tcp", ["10 5 5060 sip.x.org"])
    assert full.status == 200
    bare = await sidecar.caller.upsert("SRV", "example.com", "_sip._tcp", ["sip.x.org"])
    assert (bare.status, bare.code, bare.message) == (
        400,
        "INVALID_RECORD",
        (
            "The SRV value(s) 'sip.x.org' at _sip._tcp.example.com carry no priority, weight "
            "and port, and no client is configured, so there is no DNSRecord to take them from. "
            "Either give the client dnsClass: NAME in the routing table (the sidecar then reads "
            "that DNSClass's DNSRecords, with get, list and watch on dnsrecords (a "
            "ClusterRole)), or send 'priority weight port target' values (like "
            "'10 5 5060 sip.example.com')."
        ),
    )
    assert sidecar.app[DNS_RECORDS].status()["off"].startswith("no client of the routing table")


async def test_the_watch_reads_every_namespace_or_only_those_listed(
    kube: RunningKube,
    start_sidecar: StartSidecar,
    start_management: StartManagement,
    tmp_path: Path,
) -> None:
    """One watch across namespaces sees DNSRecords of the served class everywhere (and only
    those); with DNS_SIDECAR_DNSRECORD_NAMESPACES, one watch per listed namespace, others
    ignored; /status counts them per DNSClass."""
    kube.fake.set_dns_class("public", PUBLIC)
    kube.fake.set_dns_record("a", "mx", MX)
    kube.fake.set_dns_record("b", "sip", SRV)
    kube.fake.set_dns_record("c", "internal", MX | {"dnsClassRef": {"name": "internal"}})
    everywhere = await start(start_sidecar, kube, tmp_path, memory_table())
    assert sorted(r.name for r in index(everywhere).wanted("public")) == ["mx", "sip"]
    listed = await start(start_sidecar, kube, tmp_path, memory_table(), dnsrecord_namespaces="a, c")
    assert [r.name for r in index(listed).wanted("public")] == ["mx"]
    kube.fake.set_dns_record("a", "mx2", MX | {"subdomain": "eu"})  # a live event, in scope
    kube.fake.set_dns_record("b", "mx3", MX | {"subdomain": "us"})  # out of scope
    await eventually(lambda: len(index(listed).wanted("public")) == 2)
    status = (await (await start_management(listed)).call("GET", "/status")).body
    assert status["dnsRecords"] == {
        "enabled": True,
        "off": None,
        "synced": True,
        "generation": status["dnsRecords"]["generation"],
        "namespaces": ["a", "c"],
        "classes": {"public": 2},
        "lastError": None,
        "unreadable": [],
        "sweeps": status["dnsRecords"]["sweeps"],  # the sweeps: tests/test_sweeps_e2e.py
    }
    running = {name: loop["running"] for name, loop in status["loops"].items()}
    assert (
        running.items()
        >= {
            "watch DNSRecords in namespace a": True,
            "watch DNSRecords in namespace c": True,
        }.items()
    )
    await eventually(lambda: len(index(everywhere).wanted("public")) == 4)


async def test_410_lists_again_and_moves_the_generation(
    kube: RunningKube, start_sidecar: StartSidecar, tmp_path: Path
) -> None:
    """History compacted while the watch is away: the watch gets 410, lists again (changes made
    meanwhile included), and the generation moves so a sweep running across it knows."""
    kube.fake.set_dns_class("public", PUBLIC)
    kube.fake.set_dns_record("mail", "mx", MX)
    sidecar = await start(start_sidecar, kube, tmp_path, memory_table())
    before, lists = index(sidecar).generation, kube.fake.lists
    kube.fake.hold()
    kube.fake.delete("DNSRecord", "mail", "mx")
    kube.fake.set_dns_record("voip", "sip", SRV)
    kube.fake.compact()
    kube.fake.held = None  # those events are gone for good: only a new list shows them
    kube.fake.expire_watches()
    await eventually(lambda: [r.name for r in index(sidecar).wanted("public")] == ["sip"])
    await eventually(lambda: index(sidecar).synced)
    assert (kube.fake.lists > lists, index(sidecar).generation > before) == (True, True)


async def test_a_forbidden_list_shows_on_status_and_in_the_answer(
    kube: RunningKube,
    start_sidecar: StartSidecar,
    start_management: StartManagement,
    tmp_path: Path,
) -> None:
    """Without the permission the loop is down on /status with the RBAC to add, a bare upsert is
    refused at once saying so; once granted, the watch recovers by itself."""
    kube.fake.set_dns_class("public", PUBLIC)
    kube.fake.set_dns_record("mail", "mx", MX)
    kube.fake.forbidden_scopes.add("*")
    path = tmp_path / "routing.yaml"
    path.write_text(memory_table())
    settings = make_settings(
        table={"config": path}, kubernetes={"kubeconfig": kube.kubeconfig, "dnsrecord_wait": 30}
    )
    sidecar = await start_sidecar(settings)
    await eventually(lambda: index(sidecar).status()["lastError"] is not None)
    management = await start_management(sidecar)
    status = (await management.call("GET", "/status")).body
    refused = status["loops"]["watch DNSRecords in all namespaces"]
    assert (refused["running"], status["dnsRecords"]["synced"]) == (False, False)
    assert (
        refused["lastError"]
        == status["dnsRecords"]["lastError"]
        == (
            "the API server forbids reading DNSRecords in all namespaces (dnsrecords.dns.homelab."
            'mortenolsen.pro is forbidden: User "system:serviceaccount:dns-system:dns-sidecar" '
            'cannot list resource "dnsrecords" at the cluster scope); a ClusterRole granting get, '
            "list and watch on dnsrecords (dns.homelab.mortenolsen.pro) must be bound to the "
            "sidecar's ServiceAccount"
        )
    )
    reply = await send(sidecar, MX)  # not 30 s: the list is known to fail
    assert (reply.status, "cannot list resource" in reply.message) == (400, True)
    kube.fake.forbidden_scopes.clear()
    await eventually(lambda: index(sidecar).synced)
    assert (await send(sidecar, MX)).status == 200


async def test_reading_the_dnsrecord_by_name_fails_clearly(
    kube: RunningKube, start_sidecar: StartSidecar, tmp_path: Path
) -> None:
    """The list is allowed but the read by name is not: 400 naming the missing verb; the API
    server failing the read: 503, which the operator retries."""
    kube.fake.set_dns_class("public", PUBLIC)
    kube.fake.set_dns_record("mail", "mx", MX)
    sidecar = await start(start_sidecar, kube, tmp_path, memory_table())
    kube.fake.forbidden_scopes.add("mail")  # the namespace's objects, not the cluster-wide list
    forbidden = await send(sidecar, MX)
    assert (forbidden.status, forbidden.code, forbidden.message) == (
        400,
        "INVALID_RECORD",
        (
            'The API server forbids reading DNSRecord mail/mx (dnsrecords "mx" is forbidden): the '
            "sidecar needs get, list and watch on dnsrecords (a ClusterRole) to take an MX or SRV "
            "record's numbers from it."
        ),
    )
    kube.fake.forbidden_scopes.clear()
    kube.fake.get_failure = 500
    failing = await send(sidecar, MX)
    assert (failing.status, failing.code, failing.message) == (
        503,
        "PROVIDER_UNAVAILABLE",
        (
            "Cannot read DNSRecord mail/mx from the Kubernetes API (500: etcdserver: request timed "
            "out); the operator retries."
        ),
    )


async def test_without_a_kubernetes_api_the_view_is_off_and_says_why(
    start_sidecar: StartSidecar, tmp_path: Path
) -> None:
    """A dnsClass client but no usable kubeconfig: the view is off for that class, saying why,
    and a bare value that reaches it is refused with that reason and the remedies."""
    path = tmp_path / "routing.yaml"
    path.write_text(memory_table())
    settings = make_settings(
        table={"config": path}, kubernetes={"kubeconfig": tmp_path / "missing-kubeconfig"}
    )
    sidecar = await start_sidecar(settings)
    view = index(sidecar)
    off = view.status()["off"]
    assert off.startswith("no Kubernetes API to read DNSRecords from: no Kubernetes API: ")
    assert (view.classes(), view.synced) == (frozenset({"public"}), False)
    with pytest.raises(InvalidRecord) as caught:  # the client itself is refused (401) here
        await sidecar.app[BARE_VALUES].complete("public", "public", MX_KEY, ["mail.example.com"])
    assert f"DNSRecords are not read: {off}. Either let the sidecar read them" in (
        caught.value.message
    )


async def test_a_dropped_watch_moves_the_generation_and_resumes_without_a_list(
    kube: RunningKube, start_sidecar: StartSidecar, tmp_path: Path
) -> None:
    """The API server drops the watch: the generation moves and synced turns false (a sweep
    across it must not act), then the watch resumes from its resourceVersion, delivering what
    changed meanwhile, without listing again."""
    kube.fake.set_dns_class("public", PUBLIC)
    kube.fake.set_dns_record("mail", "mx", MX)
    sidecar = await start(start_sidecar, kube, tmp_path, memory_table())
    view = index(sidecar)
    before, lists = view.generation, kube.fake.lists
    kube.fake.drop_watches()
    await eventually(lambda: view.generation > before)
    kube.fake.set_dns_record("voip", "sip", SRV)  # while the watch is away, or just back
    await eventually(lambda: view.synced and len(view.wanted("public")) == 2)
    assert kube.fake.lists == lists
