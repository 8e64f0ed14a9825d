"""Checks across routing-table entries: unit tests of ``config.schema.cross_check``."""

from __future__ import annotations

from typing import Any

from sidecar.config.schema import cross_check


def test_a_consistent_table_has_no_findings() -> None:
    """Distinct names, zones naming defined accounts, client zones that route: nothing to say."""
    data: dict[str, Any] = {
        "clients": [{"name": "c", "zones": ["www.example.com"]}],
        "accounts": [{"name": "m", "provider": "memory"}],
        "zones": [{"name": "example.com", "account": "m"}],
    }
    assert cross_check(data) == []


def test_duplicates_are_found_after_canonicalisation() -> None:
    """Zone names compare case- and dot-insensitively; the finding points at the second entry."""
    data = {
        "accounts": [{"name": "m"}, {"name": "m"}],
        "zones": [
            {"name": "Example.COM.", "account": "m"},
            {"name": "example.com", "account": "m"},
        ],
    }
    assert cross_check(data) == [
        (("accounts", 1, "name"), "duplicate name 'm' (first at accounts[0])"),
        (("zones", 1, "name"), "duplicate name 'example.com' (first at zones[0])"),
    ]


def test_zone_naming_a_missing_account_lists_the_defined_ones() -> None:
    """The message names the missing account and every account that is defined."""
    data = {
        "accounts": [{"name": "b"}, {"name": "a"}],
        "zones": [{"name": "example.com", "account": "nope"}],
    }
    assert cross_check(data) == [
        (
            ("zones", 0, "account"),
            "zone 'example.com' names account 'nope', which is not defined (accounts: a, b)",
        )
    ]


def test_client_zone_that_no_zone_routes() -> None:
    """A client allowed a zone outside every routed zone is reported at that list item."""
    data = {
        "clients": [{"name": "c", "zones": ["example.com", "example.org"]}],
        "accounts": [{"name": "m"}],
        "zones": [{"name": "example.com", "account": "m"}],
    }
    assert cross_check(data) == [
        (("clients", 0, "zones", 1), "client 'c' may change 'example.org', but no zone routes it")
    ]


def test_malformed_sections_are_skipped_not_crashed_on() -> None:
    """Best effort on raw data: wrong shapes (schema errors reported elsewhere) yield nothing."""
    assert (
        cross_check({"accounts": "m", "zones": [1, {"name": 5}], "clients": [{"zones": "x"}]}) == []
    )
