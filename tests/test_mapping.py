"""Between record values and Cloudflare's shapes: unit tests of ``providers/cloudflare/mapping``."""

from __future__ import annotations

from typing import Any

import pytest

from sidecar.errors import InvalidRecord
from sidecar.providers.cloudflare.mapping import (
    CloudflareRecord,
    effective,
    from_api,
    to_api,
    unquote_txt,
)

CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("A", "192.0.2.1", {"content": "192.0.2.1"}),
    ("AAAA", "2001:db8::1", {"content": "2001:db8::1"}),
    ("CNAME", "target.example.net", {"content": "target.example.net"}),
    ("TXT", "v=spf1 -all", {"content": "v=spf1 -all"}),
    ("MX", "10 mail.example.com", {"content": "mail.example.com", "priority": 10}),
    (
        "SRV",
        "10 5 5060 sip.example.com",
        {"data": {"priority": 10, "weight": 5, "port": 5060, "target": "sip.example.com"}},
    ),
    (
        "CAA",
        '0 issue "letsencrypt.org"',
        {"data": {"flags": 0, "tag": "issue", "value": "letsencrypt.org"}},
    ),
]


@pytest.mark.parametrize(("kind", "value", "fields"), CASES)
def test_value_round_trips_through_the_api_shape(
    kind: str, value: str, fields: dict[str, Any]
) -> None:
    """to_api puts each value where Cloudflare keeps it; from_api reads the same value back."""
    body = to_api(kind, "x.example.com", value, ttl=300, proxied=False, comment="m")
    assert (
        body
        == {"type": kind, "name": "x.example.com", "ttl": 300, "proxied": False, "comment": "m"}
        | fields
    )
    assert from_api({"id": "r1", **body}) == CloudflareRecord(
        "r1", kind, "x.example.com", value, 300, False, "m"
    )


def test_from_api_reads_the_sdk_float_numbers_and_quoted_txt() -> None:
    """Priorities as floats (10.0), quoted split TXT, an FQDN with a dot, no comment: canonical."""
    mx = from_api(
        {
            "id": "1",
            "type": "mx",
            "name": "X.Example.com.",
            "content": "Mail.Example.com",
            "priority": 10.0,
            "ttl": 60,
        }
    )
    txt = from_api(
        {
            "id": "2",
            "type": "TXT",
            "name": "t.example.com",
            "content": '"v=spf1 " "-all"',
            "comment": "",
        }
    )
    assert (mx, txt) == (
        CloudflareRecord("1", "MX", "x.example.com", "10 mail.example.com", 60, False, None),
        CloudflareRecord("2", "TXT", "t.example.com", "v=spf1 -all", 1, False, None),
    )


def test_a_value_we_could_not_have_written_is_kept_as_is() -> None:
    """A foreign record with content we cannot canonicalise is compared verbatim, not dropped."""
    assert (
        from_api({"id": "1", "type": "A", "name": "a.example.com", "content": "not-an-ip"}).value
        == "not-an-ip"
    )


@pytest.mark.parametrize(
    ("content", "text"),
    [
        ('"a" "b"', "ab"),
        ('"say \\"hi\\""', 'say "hi"'),
        ("bare text", "bare text"),
        ('"a" junk', '"a" junk'),
    ],
)
def test_unquote_txt(content: str, text: str) -> None:
    """Cloudflare's quoted TXT form is unquoted; anything else is kept as it is."""
    assert unquote_txt(content) == text


def test_effective_ttl_and_proxied() -> None:
    """Proxied only for A/AAAA/CNAME (then TTL automatic); other TTLs must be 1 or 60..86400."""
    assert [
        effective("A", 300, True),
        effective("TXT", 300, True),
        effective("A", 1, False),
        effective("A", 86400, False),
    ] == [(1, True), (300, False), (1, False), (86400, False)]
    with pytest.raises(InvalidRecord, match="Invalid TTL 30 for Cloudflare"):
        effective("A", 30, False)
