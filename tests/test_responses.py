"""Response bodies built from remembered parts read exactly as the JSON encoder writes them."""

from __future__ import annotations

import json

import pytest

from sidecar.protocol.json import record_response
from sidecar.records import RecordKey, RecordSet


@pytest.mark.parametrize("message", [None, "Record created successfully", 'quoted "é" \u2603'])
def test_record_response_is_the_encoded_body(message: str | None) -> None:
    """The body equals ``json.dumps`` of the same dict with compact separators, ASCII only."""
    record = RecordSet.build(RecordKey.parse("TXT", "Example.com", "wWw"), ["v=1 é", '"x"'], 60)
    body: dict[str, object] = {"success": True, "record": record.to_wire()}
    if message is not None:
        body["message"] = message
    response = record_response(record, message)
    assert response.body == json.dumps(body, separators=(",", ":")).encode()
    assert response.content_type == "application/json"
    assert response.status == 200
