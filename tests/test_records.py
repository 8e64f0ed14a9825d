"""Record names and values: validation and the canonical form upserts compare in."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidecar.errors import InvalidRecord
from sidecar.providers.base import ZonePolicy
from sidecar.providers.memory import MemoryProvider
from sidecar.records import RecordKey, RecordName, RecordSet
from sidecar.records.values import canonical_values


@pytest.mark.parametrize(
    ("kind", "given", "canonical"),
    [
        ("A", [" 192.0.2.1 ", "192.0.2.1"], ("192.0.2.1",)),
        ("AAAA", ["2001:0DB8:0000::0001", "::ffff:192.0.2.1"], ("2001:db8::1", "::ffff:c000:201")),
        ("CNAME", ["WWW.Example.COM."], ("www.example.com",)),
        ("TXT", ["  keep spaces  ", "\u00e9t\u00e9"], ("  keep spaces  ", "\u00e9t\u00e9")),
        ("MX", ["0 .", "010 MX.example.com"], ("0 .", "10 mx.example.com")),
        ("SRV", ["0 0 443 _sip._tcp.Example.com."], ("0 0 443 _sip._tcp.example.com",)),
        (
            "CAA",
            ['0 issuewild ";"', '0 iodef "mailto:a\\"b"'],
            ('0 issuewild ";"', '0 iodef "mailto:a\\"b"'),
        ),
        ("NS", ["ns1.b\u00fccher.example"], ("ns1.xn--bcher-kva.example",)),
    ],
)
def test_canonical_values(kind: str, given: list[str], canonical: tuple[str, ...]) -> None:
    """Each type's values are normalised and deduplicated, order kept."""
    assert canonical_values(kind, given) == canonical


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("A", "1.2.3"),
        ("AAAA", "2001:db8::g"),
        ("MX", "-1 mx.example.com"),
        ("SRV", "1 2 65536 x.example.com"),
        ("CAA", '256 issue "x"'),
        ("CAA", '0 is-sue "x"'),
        ("CNAME", "*.example.com"),
        ("NS", "a..b"),
    ],
)
def test_invalid_values(kind: str, value: str) -> None:
    """A value that is not of its type is INVALID_RECORD naming the value."""
    with pytest.raises(InvalidRecord) as caught:
        canonical_values(kind, [value])
    assert caught.value.code == "INVALID_RECORD"


def test_value_count_limit() -> None:
    """At most 100 values per record set."""
    with pytest.raises(InvalidRecord, match="at most 100 values"):
        canonical_values("A", [f"10.0.{i // 256}.{i % 256}" for i in range(101)])


@pytest.mark.parametrize(
    ("domain", "sub", "fqdn"),
    [
        ("Example.COM.", "@", "example.com"),
        ("example.com", "", "example.com"),
        ("example.com", "*", "*.example.com"),
        ("example.com", "_acme-challenge.WWW", "_acme-challenge.www.example.com"),
        ("xn--bcher-kva.example", "a", "a.xn--bcher-kva.example"),
    ],
)
def test_names(domain: str, sub: str, fqdn: str) -> None:
    """Names are lower-cased, lose the trailing dot, and join into the FQDN."""
    assert RecordName.parse(domain, sub).fqdn == fqdn


async def test_memory_snapshot_is_valid_json_and_rejects_corruption(tmp_path: Path) -> None:
    """The snapshot is plain JSON; a corrupt one stops the provider with a clear error."""
    path = tmp_path / "snap.json"
    provider = MemoryProvider(snapshot=path)
    key = RecordKey.parse("A", "example.com", "www")
    await provider.upsert(ZonePolicy(name="."), RecordSet.build(key, ["192.0.2.1"], 60))
    assert json.loads(path.read_text()) == {
        "version": 2,
        "records": [
            {
                "type": "A",
                "domain": "example.com",
                "subdomain": "www",
                "values": ["192.0.2.1"],
                "ttl": 60,
                "marker": "managed by dns-sidecar (owner=dns-sidecar)",
            }
        ],
    }
    await provider.delete(ZonePolicy(name="."), key)
    assert json.loads(path.read_text())["records"] == []
    path.write_text("{broken")
    with pytest.raises(ValueError, match=r"snapshot .* cannot be read"):
        MemoryProvider(snapshot=path)


async def test_memory_snapshot_write_failure_is_unavailable(tmp_path: Path) -> None:
    """A snapshot that cannot be written is PROVIDER_UNAVAILABLE, not a 500."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    provider = MemoryProvider(snapshot=blocker / "snap.json")  # parent is a file
    key = RecordKey.parse("A", "example.com", "www")
    with pytest.raises(Exception) as caught:  # noqa: PT011 - checked below
        await provider.upsert(ZonePolicy(name="."), RecordSet.build(key, ["192.0.2.1"], 60))
    assert getattr(caught.value, "code", None) == "PROVIDER_UNAVAILABLE"
    assert provider.status()["recordSets"] == 0  # the change that could not be persisted was undone


@given(st.ip_addresses(v=4))
def test_ipv4_canonical_form_is_stable(address: object) -> None:
    """Any IPv4 address canonicalises to itself, once and again (so nothing loops)."""
    once = canonical_values("A", [str(address)])
    assert canonical_values("A", list(once)) == once == (str(address),)


@given(st.ip_addresses(v=6))
def test_ipv6_spellings_agree(address: object) -> None:
    """Exploded, compressed and upper-case spellings of an IPv6 address compare equal."""
    text = str(address)
    exploded = address.exploded.upper()  # type: ignore[attr-defined]
    assert canonical_values("AAAA", [exploded]) == canonical_values("AAAA", [text])


@given(
    st.from_regex(
        r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?){1,3}",
        fullmatch=True,
    )
)
def test_host_names_are_case_and_dot_insensitive(name: str) -> None:
    """A host name with other case and a trailing dot is the same CNAME target."""
    assert canonical_values("CNAME", [name.upper() + "."]) == (name,)
