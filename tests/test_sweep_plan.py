"""The sweep's plan: one zone's listing against what the DNSRecords want (a pure function)."""

from __future__ import annotations

from dataclasses import replace

from sidecar.dnsrecords import RecordMetadata, WantedRecord
from sidecar.providers.base import HeldSet, Ownership, ZonePolicy
from sidecar.providers.ownership import Mark
from sidecar.records import RecordKey, RecordSet
from sidecar.sweeps.plan import Finding, Fix, Kind, Wants, plan_zone

ZONE = ZonePolicy(name="example.com", ttl=300)
ME = "dns-sidecar"
NO_METADATA = RecordMetadata()


def want(
    sub: str,
    values: tuple[str, ...],
    *,
    kind: str = "A",
    dns_class: str = "public",
    ttl: int | None = None,
    name: str | None = None,
    metadata: RecordMetadata = NO_METADATA,
) -> WantedRecord:
    return WantedRecord(
        "apps", name or sub, dns_class, RecordKey.parse(kind, "example.com", sub), values, ttl,
        metadata,
    )  # fmt: skip


def held(
    sub: str,
    values: tuple[str, ...],
    mark: Mark | None,
    *,
    kind: str = "A",
    ttl: int | None = 300,
    foreign: tuple[str, ...] = (),
) -> HeldSet:
    fqdn = f"{sub}.example.com" if sub != "@" else "example.com"
    return HeldSet(
        kind, fqdn, values if mark else (), ttl, mark, foreign or (() if mark else values)
    )


def wants(
    *records: WantedRecord,
    classes: tuple[str, ...] = ("public",),
    ttls: dict[str, int | None] | None = None,
) -> Wants:
    keys = {
        c: frozenset((r.key.type, r.key.fqdn) for r in records if r.dns_class == c) for c in classes
    }
    return Wants(records, keys, ttls or {})


PUBLIC = Mark(ME, "public")


def test_nothing_to_do_when_the_zone_holds_what_is_wanted() -> None:
    """Same values (in any order) and the same TTL: no finding."""
    found = plan_zone(
        ZONE,
        [held("www", ("192.0.2.2", "192.0.2.1"), PUBLIC)],
        wants(want("www", ("192.0.2.1", "192.0.2.2"))),
        deployment=ME,
    )
    assert found == []


def test_a_set_no_dnsrecord_of_its_class_wants_is_a_prunable_orphan() -> None:
    """A renamed DNSRecord leaves its old set behind: an orphan of its class, prunable."""
    found = plan_zone(
        ZONE,
        [held("old", ("192.0.2.1",), PUBLIC), held("new", ("192.0.2.1",), PUBLIC)],
        wants(want("new", ("192.0.2.1",))),
        deployment=ME,
    )
    assert [(f.kind, f.fqdn, f.fix, f.dns_class, f.held) for f in found] == [
        (Kind.ORPHAN, "old.example.com", Fix.PRUNE, "public", ("192.0.2.1",))
    ]


def test_a_legacy_marker_is_reported_never_pruned() -> None:
    """A set marked before owners (no class) that nobody wants: reported with no fix; one that
    some DNSRecord wants is no orphan but drift, whose repair writes the class into its marker
    (not under ownership: off, where an upsert leaves markers as they are)."""
    listing = [held("old", ("192.0.2.1",), Mark()), held("www", ("192.0.2.9",), Mark())]
    found = plan_zone(ZONE, listing, wants(want("www", ("192.0.2.9",))), deployment=ME)
    assert [(f.kind, f.fqdn, f.fix) for f in found] == [
        (Kind.ORPHAN, "old.example.com", None),
        (Kind.DRIFT, "www.example.com", Fix.REPAIR),
    ]
    assert "never pruned" in found[0].reason
    assert found[1].reason == (
        "DNSRecord apps/www (DNSClass public): its marker is from before owners; a repair "
        "writes the DNSClass into it."
    )
    off = ZonePolicy(name="example.com", ownership=Ownership.OFF)
    assert plan_zone(off, listing[1:], wants(want("www", ("192.0.2.9",))), deployment=ME) == []


def test_sets_of_other_deployments_and_classless_clients_are_not_judged() -> None:
    """Another deployment's set, and one written by a client without a DNSClass, are left out;
    a set of a DNSClass no client serves is reported, never pruned."""
    found = plan_zone(
        ZONE,
        [
            held("a", ("192.0.2.1",), Mark("other-cluster", "public")),
            held("b", ("192.0.2.1",), Mark(ME, None)),
            held("c", ("192.0.2.1",), Mark(ME, "internal")),
        ],
        wants(),
        deployment=ME,
    )
    assert [(f.kind, f.fqdn, f.fix, f.dns_class) for f in found] == [
        (Kind.ORPHAN, "c.example.com", None, "internal")
    ]


def test_an_orphan_of_another_served_class_is_prunable_only_for_its_own_class() -> None:
    """A set of class internal wanted by a DNSRecord of class public is still an orphan of
    internal (its own class no longer wants it)."""
    found = plan_zone(
        ZONE,
        [held("www", ("192.0.2.1",), Mark(ME, "internal"))],
        wants(want("www", ("192.0.2.1",)), classes=("public", "internal")),
        deployment=ME,
    )
    kinds = [(f.kind, f.dns_class, f.fix) for f in found]
    assert kinds == [
        (Kind.ORPHAN, "internal", Fix.PRUNE),
        (Kind.CONFLICT, "public", None),
    ]


def test_drift_missing_other_values_other_ttl() -> None:
    """Missing, other values and another TTL are drift with a repair, each saying what differs;
    the wanted TTL is spec.ttl, else the class's defaultTTL, else the zone's."""
    found = plan_zone(
        ZONE,
        [
            held("values", ("192.0.2.1",), PUBLIC),
            held("ttl", ("192.0.2.1",), PUBLIC, ttl=300),
            held("classttl", ("192.0.2.1",), PUBLIC, ttl=300),
            held("zonettl", ("192.0.2.1",), PUBLIC, ttl=300),
        ],
        wants(
            want("missing", ("192.0.2.1",)),
            want("values", ("192.0.2.2",)),
            want("ttl", ("192.0.2.1",), ttl=600),
            want("classttl", ("192.0.2.1",)),
            ttls={"public": 120},
        ),
        deployment=ME,
    )
    assert [(f.kind, f.fqdn, f.fix, f.wanted.ttl if f.wanted else None) for f in found] == [
        (Kind.ORPHAN, "zonettl.example.com", Fix.PRUNE, None),
        (Kind.DRIFT, "missing.example.com", Fix.REPAIR, 120),
        (Kind.DRIFT, "values.example.com", Fix.REPAIR, 120),
        (Kind.DRIFT, "ttl.example.com", Fix.REPAIR, 600),
        (Kind.DRIFT, "classttl.example.com", Fix.REPAIR, 120),
    ]
    reasons = [f.reason for f in found[1:]]
    assert reasons == [
        "DNSRecord apps/missing (DNSClass public): missing: the provider holds no such set.",
        "DNSRecord apps/values (DNSClass public): holds 192.0.2.1, wanted 192.0.2.2.",
        "DNSRecord apps/ttl (DNSClass public): holds TTL 300, wanted 600.",
        "DNSRecord apps/classttl (DNSClass public): holds TTL 300, wanted 120.",
    ]


def test_the_zone_ttl_applies_when_neither_record_nor_class_sets_one() -> None:
    """No spec.ttl, no defaultTTL: the zone's TTL is wanted; a TTL the provider decides (None)
    is not compared."""
    found = plan_zone(
        ZONE,
        [held("a", ("192.0.2.1",), PUBLIC, ttl=60), held("b", ("192.0.2.1",), PUBLIC, ttl=None)],
        wants(want("a", ("192.0.2.1",)), want("b", ("192.0.2.1",))),
        deployment=ME,
    )
    assert [(f.fqdn, f.reason) for f in found] == [
        ("a.example.com", "DNSRecord apps/a (DNSClass public): holds TTL 60, wanted 300.")
    ]


def test_bare_mx_values_are_completed_from_the_metadata() -> None:
    """An MX DNSRecord as the operator admits it (bare host, priority in metadata) matches a set
    holding '10 mail.example.com'; without the priority it cannot be published (no repair)."""
    found = plan_zone(
        ZONE,
        [held("@", ("10 mail.example.com",), PUBLIC, kind="MX")],
        wants(
            want("@", ("mail.example.com",), kind="MX", metadata=RecordMetadata(priority=10)),
            want("mx2", ("mail.example.com",), kind="MX"),
        ),
        deployment=ME,
    )
    assert [(f.kind, f.fqdn, f.fix) for f in found] == [(Kind.DRIFT, "mx2.example.com", None)]
    assert "cannot be published" in found[0].reason


def test_foreign_records_at_the_name_are_a_conflict_under_strict() -> None:
    """Unmarked values, a set of another deployment, a CNAME in the way: conflicts, no fix;
    under adopt the unmarked values are drift to repair (the upsert takes them over)."""
    listing = [
        held("www", (), None, foreign=("198.51.100.7",)),
        held("theirs", ("192.0.2.1",), Mark("other-cluster", "public")),
        held("alias", ("target.example.net",), None, kind="CNAME"),
    ]
    records = wants(
        want("www", ("192.0.2.1",)), want("theirs", ("192.0.2.1",)), want("alias", ("192.0.2.1",))
    )
    found = plan_zone(ZONE, listing, records, deployment=ME)
    assert [(f.kind, f.fqdn, f.fix) for f in found] == [
        (Kind.CONFLICT, "www.example.com", None),
        (Kind.CONFLICT, "theirs.example.com", None),
        (Kind.CONFLICT, "alias.example.com", None),
    ]
    assert found[0].held == ("198.51.100.7",)
    assert "ownership: adopt" in found[0].reason
    assert "other-cluster" in found[1].reason
    assert "CNAME cannot share" in found[2].reason
    adopt = ZonePolicy(name="example.com", ownership=Ownership.ADOPT)
    adopted = plan_zone(adopt, listing[:1], wants(want("www", ("192.0.2.1",))), deployment=ME)
    assert [(f.kind, f.fix) for f in adopted] == [(Kind.DRIFT, Fix.REPAIR)]


def test_two_dnsrecords_of_one_class_that_disagree_are_a_conflict() -> None:
    """Two DNSRecords of one class at one name with different values: a conflict naming both;
    two that agree are one wanted set."""
    found = plan_zone(
        ZONE,
        [held("www", ("192.0.2.1",), PUBLIC), held("same", ("192.0.2.1",), PUBLIC)],
        wants(
            want("www", ("192.0.2.1",), name="one"),
            want("www", ("192.0.2.2",), name="two"),
            want("same", ("192.0.2.1",), name="x"),
            want("same", ("192.0.2.1",), name="y"),
        ),
        deployment=ME,
    )
    assert [(f.kind, f.fqdn, f.records) for f in found] == [
        (Kind.CONFLICT, "www.example.com", ("apps/one", "apps/two"))
    ]


def test_a_finding_knows_its_record_key() -> None:
    """An orphan's key is split at the zone (or the apex of a root zone); drift keeps the
    DNSRecord's own key."""
    orphan = Finding(Kind.ORPHAN, "example.com", "A", "a.b.example.com", "")
    assert (orphan.key().type, orphan.key().fqdn, orphan.key().name.subdomain) == (
        "A",
        "a.b.example.com",
        "a.b",
    )
    apex = Finding(Kind.ORPHAN, ".", "TXT", "example.org", "")
    assert (apex.key().fqdn, apex.key().name.subdomain) == ("example.org", "@")
    wanted = RecordSet.build(RecordKey.parse("A", "example.com", "www"), ["192.0.2.1"], 300)
    drift = Finding(Kind.DRIFT, "example.com", "A", "www.example.com", "", wanted=wanted)
    assert drift.key() == wanted.key


def test_an_unread_dnsclass_leaves_the_ttl_unknown_and_nothing_repaired() -> None:
    """The DNSClass cannot be read (deleted, not synced): for a DNSRecord without spec.ttl the
    wanted TTL is unknown, so a TTL alone is no drift, and other drift is reported, not
    repaired (a repair would write the zone's TTL over the operator's); spec.ttl still counts."""
    found = plan_zone(
        ZONE,
        [
            held("ttl", ("192.0.2.1",), PUBLIC, ttl=900),
            held("values", ("192.0.2.1",), PUBLIC, ttl=900),
            held("own", ("192.0.2.1",), PUBLIC, ttl=900),
        ],
        replace(
            wants(
                want("ttl", ("192.0.2.1",)),
                want("values", ("192.0.2.2",)),
                want("own", ("192.0.2.1",), ttl=600),
            ),
            unread={"public": "DNSClass public does not exist."},
        ),
        deployment=ME,
    )
    assert [(f.fqdn, f.fix, f.reason) for f in found] == [
        (
            "values.example.com",
            None,
            (
                "DNSRecord apps/values (DNSClass public): holds 192.0.2.1, wanted 192.0.2.2; "
                "not repaired: the TTL it wants is unknown while its DNSClass cannot be read "
                "(DNSClass public does not exist)."
            ),
        ),
        (
            "own.example.com",
            Fix.REPAIR,
            "DNSRecord apps/own (DNSClass public): holds TTL 900, wanted 600.",
        ),
    ]
