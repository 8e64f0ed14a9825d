"""The protocol's request bodies and path parameters, parsed at the edge into record types.

Shape problems (not JSON, wrong JSON types, missing keys, unknown operation) are
``INVALID_REQUEST``; a well-formed record that fails DNS validation is ``INVALID_RECORD``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NotRequired

from pydantic import ConfigDict, StrictInt, StrictStr, TypeAdapter, ValidationError, with_config
from typing_extensions import TypedDict  # pydantic needs this one before Python 3.12

from sidecar.errors import InvalidRequest
from sidecar.records import RecordKey

OPERATIONS = ("upsert",)


# TypedDicts, not models: validated to plain dicts, half the cost of building two models per
# upsert, with the same error locations and messages
@with_config(ConfigDict(extra="ignore", strict=True))
class _WireRecord(TypedDict):
    type: StrictStr
    domain: StrictStr
    subdomain: NotRequired[StrictStr]  # "@" when absent
    values: list[StrictStr]
    ttl: NotRequired[StrictInt | None]


@with_config(ConfigDict(extra="ignore", strict=True))
class _UpsertBody(TypedDict):
    record: _WireRecord
    operation: StrictStr


_UPSERT_BODY = TypeAdapter(_UpsertBody)


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
        parsed = _UPSERT_BODY.validate_json(body)
    except ValidationError as err:
        raise _shape_error(err) from None
    operation = parsed["operation"]
    if operation not in OPERATIONS:
        raise InvalidRequest(
            f"Unknown operation {operation!r}; supported: {', '.join(OPERATIONS)}.",
            details={"field": "operation"},
        )
    record = parsed["record"]
    key = RecordKey.parse(record["type"], record["domain"], record.get("subdomain", "@"))
    return UpsertRequest(key, record["values"], record.get("ttl"))


def _shape_error(err: ValidationError) -> InvalidRequest:
    errors = err.errors(include_url=False, include_input=False, include_context=False)
    if any(error["type"] == "json_invalid" for error in errors):
        said = " ".join(error["msg"] for error in errors)
        if "recursion limit" in said:  # valid JSON maybe, but deeper than the parser goes
            return InvalidRequest(
                "The body's JSON is nested too deeply for the parser (a record body has three "
                "levels: the body, the record and its values)."
            )
        return InvalidRequest("The body is not valid JSON (UTF-8).")
    problems = [
        {"field": ".".join(str(part) for part in error["loc"]), "problem": error["msg"]}
        for error in errors
    ]
    first = problems[0]
    where = f"{first['field']}: " if first["field"] else ""  # none: the body as a whole
    return InvalidRequest(
        f"The body does not have the expected shape: {where}{first['problem']}.",
        details={"field": first["field"], "problems": problems},
    )
