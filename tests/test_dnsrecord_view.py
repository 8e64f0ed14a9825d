"""The DNSRecords view, module by module: a DNSRecord reduced to what it wants (``parse``,
``WantedRecord``), the index and its generation, the paged list through the real client, the
memory 10 000 DNSRecords take, and the watch following the routing table's dnsClass clients.
"""

from __future__ import annotations

import gc
import json
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from sidecar.app import DNS_RECORDS, RELOADER, STORE
from sidecar.credentials.kubernetes import KubernetesObjects
from sidecar.dnsrecords.index import DnsRecordIndex
from sidecar.dnsrecords.parse import Unreadable, parse
from sidecar.dnsrecords.wanted import RecordMetadata, WantedRecord
from sidecar.errors import InvalidRecord
from sidecar.records import RecordKey
from sidecar.settings import WatchSettings
from tests.builders import dns_record_spec
from tests.conftest import RunningKube, StartSidecar, eventually, make_settings

SRV_SPEC = dns_record_spec(
    "SRV", "Example.COM", "_sip._tcp", ["SIP.example.com"], "public", ttl=60,
    metadata={"priority": 10, "weight": 5, "port": 5060},
)  # fmt: skip


def raw(namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    """A DNSRecord as the API server sends it (with the parts the sidecar drops)."""
    return {
        "apiVersion": "dns.homelab.mortenolsen.pro/v1alpha1",
        "kind": "DNSRecord",
        "metadata": {"namespace": namespace, "name": name, "resourceVersion": "7", "uid": "u"},
        "spec": spec,
        "status": {"state": "Created", "fqdn": "x", "conditions": [{"type": "Ready"}]},
    }


def test_a_dnsrecord_becomes_what_it_wants() -> None:
    """spec is reduced to the key (normalised), the values as stated, spec.ttl and the typed
    metadata; full_values puts the numbers before each bare target, canonical."""
    wanted = parse(raw("voip", "sip", SRV_SPEC))
    assert wanted == WantedRecord(
        namespace="voip",
        name="sip",
        dns_class="public",
        key=RecordKey.parse("SRV", "example.com", "_sip._tcp"),
        values=("SIP.example.com",),
        ttl=60,
        metadata=RecordMetadata(priority=10, weight=5, port=5060),
    )
    assert isinstance(wanted, WantedRecord)
    assert wanted.full_values() == ("10 5 5060 sip.example.com",)


def test_full_values_leave_other_types_and_full_values_alone() -> None:
    """A values and an MX value that already has its priority are kept as they are."""
    a = parse(raw("n", "a", dns_record_spec("A", "example.com", "www", ["192.0.2.1"], "public")))
    mx = parse(raw("n", "mx", SRV_SPEC | {"type": "MX", "values": ["20 b.example.com", "a.ex"]}))
    assert isinstance(a, WantedRecord)
    assert isinstance(mx, WantedRecord)
    assert (a.full_values(), mx.full_values()) == (
        ("192.0.2.1",),
        ("20 b.example.com", "10 a.ex"),
    )


def test_full_values_without_the_metadata_needed_say_what_is_missing() -> None:
    """An SRV whose DNSRecord lacks the port (no webhook admitted it) cannot be published."""
    spec = SRV_SPEC | {"metadata": {"priority": 1, "weight": "5", "port": True}}
    wanted = parse(raw("n", "sip", spec))
    assert isinstance(wanted, WantedRecord)
    assert wanted.metadata == RecordMetadata(priority=1)  # a string and a bool are not numbers
    with pytest.raises(InvalidRecord) as caught:
        wanted.full_values()
    assert caught.value.message == (
        "The SRV value 'SIP.example.com' needs spec.metadata.weight, spec.metadata.port on its "
        "DNSRecord."
    )


@pytest.mark.parametrize(
    ("spec", "found"),
    [
        ({"type": "A", "values": ["192.0.2.1"]}, None),  # no dnsClassRef: for no one
        (
            {"dnsClassRef": {"name": "public"}, "type": "A", "domain": "a..b", "subdomain": "@"},
            "domain 'a..b' has an empty label.",
        ),
        (
            {"dnsClassRef": {"name": "public"}, "type": "A", "domain": "a.b", "subdomain": "@"},
            "spec.values is not a list of strings.",
        ),
        (
            {"dnsClassRef": {"name": "public"}, "type": "A"},
            "spec.domain is missing or not a string.",
        ),
    ],
)
def test_a_dnsrecord_that_names_no_valid_record_is_unreadable(
    spec: dict[str, Any], found: str | None
) -> None:
    """What cannot be read is reported with its reason, never guessed at."""
    result = parse(raw("n", "x", spec))
    if found is None:
        assert result is None
    else:
        assert result == Unreadable("n", "x", "public", found)


def test_the_index_keeps_served_classes_and_moves_its_generation_when_it_may_miss() -> None:
    """Only served classes are kept; a list, a lost watch, a new set of classes and turning off
    move the generation, an event does not; synced needs every scope listed and live."""
    index = DnsRecordIndex()
    assert (index.synced, index.status()["off"]) == (False, "not started")
    index.serve({"public"}, ["a", "b"])
    start = index.generation
    index.replace("a", [raw("a", "sip", SRV_SPEC), raw("a", "x", SRV_SPEC | {"dnsClassRef": {}})])
    index.replace("b", [raw("b", "bad", SRV_SPEC | {"domain": "-x-"})])
    index.connected("a")
    assert index.synced is False  # b is listed, not live yet
    index.connected("b")
    listed = index.generation
    assert (index.synced, listed - start) == (True, 2)
    index.apply("a", "ADDED", raw("a", "sip2", SRV_SPEC | {"subdomain": "_x._tcp"}))
    index.apply("a", "DELETED", raw("a", "sip", SRV_SPEC))
    assert ([r.name for r in index.wanted("public")], index.generation) == (["sip2"], listed)
    index.replace("a", [])  # a relist of a keeps what b holds
    assert index.status()["unreadable"] == [
        {
            "dnsRecord": "b/bad",
            "dnsClass": "public",
            "reason": "domain '-x-' has a label '-x-' with characters a DNS name cannot hold "
            "(letters, digits, '-' and '_' only; no leading or trailing '-').",
        }
    ]
    index.connected("a")
    index.lost("b", "dropped")
    assert (index.synced, index.generation, index.status()["lastError"]) == (
        False,
        listed + 2,
        "dropped",
    )
    index.off("gone")
    assert (index.generation, index.status()["enabled"], index.wanted("public")) == (
        listed + 3,
        False,
        [],
    )


def test_ten_thousand_dnsrecords_fit_in_a_few_mib() -> None:
    """10 000 MX DNSRecords decoded from a list's JSON (status and all): what stays allocated
    once the index holds them, strings kept from the JSON included, is under 7 MiB."""
    index = DnsRecordIndex()
    index.serve({"public"}, [])
    metadata = [{"priority": 10 * (i % 3)} for i in range(10_000)]
    specs = [
        dns_record_spec("MX", "example.com", f"h-{i}", [f"m-{i}.example.com"], "public", metadata=m)
        for i, m in enumerate(metadata)
    ]
    body = json.dumps([raw(f"team-{i % 50}", f"r-{i}", spec) for i, spec in enumerate(specs)])
    gc.collect()
    tracemalloc.start()
    try:
        items = json.loads(body)
        index.replace(None, items)
        del items
        gc.collect()
        used = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert len(index.wanted("public")) == 10_000
    assert used < 7 * 2**20, f"{used / 2**20:.1f} MiB"


async def test_a_long_list_is_read_in_pages(kube: RunningKube) -> None:
    """1 200 DNSRecords are listed in pages of 500 (three list calls), then watched."""
    for i in range(1200):
        spec = dns_record_spec("A", "example.com", f"h{i}", ["192.0.2.1"], "public")
        kube.fake.set_dns_record("n", f"r{i:04}", spec)
    objects = KubernetesObjects(kubeconfig=kube.kubeconfig, settings=WatchSettings())
    await objects.start()
    index = DnsRecordIndex()
    index.serve({"public"}, [])
    try:
        assert objects.watch_dns_records([], index) is True
        await eventually(lambda: index.synced)
    finally:
        await objects.stop()
    assert (len(index.wanted("public")), kube.fake.lists, kube.fake.watches) == (1200, 3, 1)


async def test_the_watch_follows_the_dnsclass_clients_of_each_reload(
    kube: RunningKube, start_sidecar: StartSidecar, tmp_path: Path
) -> None:
    """No dnsClass client: off, saying why; a reload that adds one starts the watch (and its
    DNSClass's defaultTTL is read); a reload that drops it stops the watch."""
    kube.fake.set_dns_class("public", {"server": "http://x", "defaultTTL": 900})
    kube.fake.set_dns_record("mail", "sip", SRV_SPEC)
    path = tmp_path / "routing.yaml"
    plain = (
        "version: 1\naccounts: [{name: m, provider: memory}]\n"
        "zones: [{name: example.com, account: m}]\n"
    )
    path.write_text(plain)
    settings = make_settings(table={"config": path}, kubernetes={"kubeconfig": kube.kubeconfig})
    sidecar = await start_sidecar(settings)
    index = sidecar.app[DNS_RECORDS]
    assert index.status()["off"] == (
        "no client of the routing table names a dnsClass, so no DNSRecord is read (bare MX hosts "
        "and SRV targets are refused; sweeps do not run)"
    )
    path.write_text(plain + "clients: [{name: public, dnsClass: public}]\n")
    await sidecar.app[RELOADER].reload_once()
    await eventually(lambda: index.synced)
    assert ([r.name for r in index.wanted("public")], index.default_ttl("public")) == (
        ["sip"],
        900,
    )
    path.write_text(plain)
    await sidecar.app[RELOADER].reload_once()
    assert (index.synced, index.classes()) == (False, frozenset())
    assert "watch DNSRecords in all namespaces" not in sidecar.app[STORE].loops()
