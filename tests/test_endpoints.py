"""The protocol's endpoint table: fixed paths, templates, aiohttp's meaning of a parameter."""

from __future__ import annotations

import pytest
from aiohttp import web

from sidecar.protocol.endpoints import Endpoints

RECORDS = "/records/{type}/{domain}/{subdomain}"


async def answer(request: web.Request) -> web.Response:
    return web.Response()


def table() -> Endpoints:
    endpoints = Endpoints()
    endpoints.add("GET", "/health", answer)
    endpoints.add("GET", RECORDS, answer, may_be_empty={"subdomain"})
    endpoints.add("DELETE", RECORDS, answer, may_be_empty={"subdomain"})
    return endpoints


def test_fixed_path_has_no_parameters() -> None:
    """A fixed path is found as it is written, with its methods."""
    found = table().match("/health")
    assert found is not None
    endpoint, params = found
    assert (endpoint.label, set(endpoint.handlers), params) == ("/health", {"GET"}, {})


def test_template_gives_unquoted_parameters() -> None:
    """A template's segments become parameters; %2F and %25 are unquoted as aiohttp does."""
    found = table().match("/records/A/ex%2Fa%25mple.com/www")
    assert found is not None
    endpoint, params = found
    assert endpoint.label == RECORDS
    assert set(endpoint.handlers) == {"GET", "DELETE"}
    assert params == {"type": "A", "domain": "ex/a%mple.com", "subdomain": "www"}


@pytest.mark.parametrize(
    "path",
    ["/records/A//www", "/records/{A}/example.com/www", "/health/", "/records/A/x", "*", ""],
)
def test_no_endpoint(path: str) -> None:
    """An empty or braced parameter, another segment count or an unknown path match nothing."""
    assert table().match(path) is None


def test_parameter_that_may_be_empty() -> None:
    """A parameter listed in ``may_be_empty`` takes the empty segment and braces."""
    assert table().match("/records/A/example.com/") is not None
    assert table().match("/records/A/example.com/{x}") is not None


def test_fixed_segment_of_a_template_must_match() -> None:
    """A template's fixed segment is compared as written."""
    assert table().match("/other/A/example.com/www") is None


def test_a_templated_match_is_remembered_within_a_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same path is searched once; the memory stays bounded; a miss is not remembered."""
    endpoints = table()
    monkeypatch.setattr(Endpoints, "REMEMBERED", 2)
    searched: list[str] = []
    search = endpoints._search  # noqa: SLF001 - our own table's lookup, counted
    monkeypatch.setattr(endpoints, "_search", lambda path: searched.append(path) or search(path))
    first, again = (endpoints.match("/records/A/example.com/www") for _ in range(2))
    assert first is not None
    assert again == first
    for name in ("a", "b", "c"):
        assert endpoints.match(f"/records/A/example.com/{name}") is not None
    assert len(endpoints._matched) <= 2  # noqa: SLF001 - our own table's memo, bounded
    assert endpoints.match("/records/A/x") is None
    assert endpoints.match("/records/A/x") is None
    assert searched.count("/records/A/example.com/www") == 1
    assert searched.count("/records/A/x") == 2


@pytest.mark.parametrize(
    ("template", "may_be_empty"),
    [("/records/x{type}", ()), ("/records/{type}", ("domain",))],
)
def test_bad_template(template: str, may_be_empty: tuple[str, ...]) -> None:
    """A parameter inside a segment, or an unknown name in ``may_be_empty``, is refused."""
    with pytest.raises(ValueError, match="parameter"):
        Endpoints().add("GET", template, answer, may_be_empty=may_be_empty)
