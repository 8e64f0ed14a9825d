"""The protocol's request bodies and path parameters, parsed at the edge into record types.

Shape problems (not JSON, wrong JSON types, missing keys, unknown operation) are
``INVALID_REQUEST``; a well-formed record that fails DNS validation is ``INVALID_RECORD``.
"""

from __future__ import annotations

import json
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
    kind, domain, subdomain, values, ttl, operation = _well_formed(body) or _validated(body)
    if operation not in OPERATIONS:
        raise InvalidRequest(
            f"Unknown operation {operation!r}; supported: {', '.join(OPERATIONS)}.",
            details={"field": "operation"},
        )
    return UpsertRequest(RecordKey.parse(kind, domain, subdomain), values, ttl)


# type, domain, subdomain, values, ttl, operation
_Fields = tuple[str, str, str, list[str], int | None, str]


def _well_formed(body: bytes) -> _Fields | None:
    """The body when it has exactly the expected shape, read without pydantic (a third of the
    cost); ``None`` for anything else, which ``_validated`` then reads and explains."""
    if b"\\u" in body:  # escapes: lone surrogates are JSON to ``json`` but not to pydantic
        return None
    try:
        data = json.loads(body.decode())
    except (ValueError, RecursionError):
        return None
    if type(data) is not dict:
        return None
    record, operation = data.get("record"), data.get("operation")
    if type(record) is not dict or type(operation) is not str:
        return None
    kind, domain = record.get("type"), record.get("domain")
    subdomain, values = record.get("subdomain", "@"), record.get("values")
    ttl = record.get("ttl")
    if (
        type(kind) is not str
        or type(domain) is not str
        or type(subdomain) is not str
        or type(values) is not list
        or not all(type(value) is str for value in values)
        or (ttl is not None and type(ttl) is not int)
    ):
        return None
    return kind, domain, subdomain, values, ttl, operation


def _validated(body: bytes) -> _Fields:
    """The body read by pydantic: the shape error that says what is wrong, or its fields."""
    try:
        parsed = _UpsertBody.model_validate_json(body)
    except ValidationError as err:
        raise _shape_error(err) from None
    record = parsed.record
    return (
        record.type,
        record.domain,
        record.subdomain,
        record.values,
        record.ttl,
        parsed.operation,
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
