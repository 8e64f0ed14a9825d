"""The protocol's request bodies and path parameters, parsed at the edge into record types.

Shape problems (not JSON, wrong JSON types, missing keys, unknown operation) are
``INVALID_REQUEST``; a well-formed record that fails DNS validation is ``INVALID_RECORD``.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, StrictInt, StrictStr, ValidationError

from sidecar.errors import InvalidRequest
from sidecar.records import RecordKey

OPERATIONS = ("upsert",)


class _WireRecord(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    type: StrictStr
    domain: StrictStr
    subdomain: StrictStr = "@"
    values: list[StrictStr]
    ttl: StrictInt | None = None


class _UpsertBody(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    record: _WireRecord
    operation: StrictStr


@dataclass(frozen=True, slots=True)
class UpsertRequest:
    key: RecordKey
    values: list[str]
    ttl: int | None


def parse_upsert(body: bytes) -> UpsertRequest:
    if not body:
        raise InvalidRequest(
            'The body is empty; send {"record": {...}, "operation": "upsert"} as JSON.'
        )
    try:
        parsed = _UpsertBody.model_validate_json(body)
    except ValidationError as err:
        raise _shape_error(err) from None
    if parsed.operation not in OPERATIONS:
        raise InvalidRequest(
            f"Unknown operation {parsed.operation!r}; supported: {', '.join(OPERATIONS)}.",
            details={"field": "operation"},
        )
    record = parsed.record
    return UpsertRequest(
        RecordKey.parse(record.type, record.domain, record.subdomain), record.values, record.ttl
    )


def _shape_error(err: ValidationError) -> InvalidRequest:
    errors = err.errors(include_url=False, include_input=False, include_context=False)
    if any(error["type"] == "json_invalid" for error in errors):
        return InvalidRequest("The body is not valid JSON (UTF-8).")
    problems = [
        {"field": ".".join(str(part) for part in error["loc"]), "problem": error["msg"]}
        for error in errors
    ]
    first = problems[0]
    return InvalidRequest(
        f"The body does not have the expected shape: {first['field']}: {first['problem']}.",
        details={"field": first["field"], "problems": problems},
    )
