"""The shipped OpenAPI document, and a schema-driven fuzz run against the live server."""

from __future__ import annotations

from collections.abc import Iterator
from importlib import resources
from typing import Any

import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, settings
from openapi_spec_validator import validate

from tests.service import Service, running

DOCUMENT: dict[str, Any] = yaml.safe_load(
    resources.files("sidecar.protocol").joinpath("openapi.yaml").read_text()
)
schema = schemathesis.openapi.from_dict(DOCUMENT)


def test_document_is_valid_openapi_3_1() -> None:
    """The document validates against the OpenAPI 3.1 schema and covers every endpoint."""
    validate(DOCUMENT)
    assert DOCUMENT["openapi"] == "3.1.0"
    assert {
        (path, method)
        for path, ops in DOCUMENT["paths"].items()
        for method in ops
        if method != "parameters"
    } == {
        ("/health", "get"),
        ("/records", "post"),
        ("/records/{type}/{domain}/{subdomain}", "get"),
        ("/records/{type}/{domain}/{subdomain}", "delete"),
    }


@pytest.fixture(scope="module")
def live() -> Iterator[Service]:
    with running() as service:
        yield service


@pytest.mark.fuzz
@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_fuzz_live_server(case: schemathesis.Case, live: Service) -> None:
    """Generated requests, valid and not: never a 5xx, and every response matches the document."""
    # A schema-valid body can still be bad DNS (values [""]): 400 INVALID_RECORD is right there,
    # so "positive data must be accepted" is the one default check that does not apply.
    case.call_and_validate(
        base_url=live.url, excluded_checks=[schemathesis.checks.positive_data_acceptance]
    )
