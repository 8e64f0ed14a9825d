"""The access log: preformatted JSON lines identical to the JSON formatter's, or plain logging."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidecar.observability.access import AccessLog
from sidecar.observability.context import RequestFacts
from sidecar.observability.logging import ACCESS_LOGGER, ConsoleFormatter, JsonFormatter

STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00")


def fields(path: str = "/records", client: str | None = "op") -> dict[str, Any]:
    return {
        "request_id": "rq-1",
        "client": client,
        "remote": "127.0.0.1",
        "method": "POST",
        "path": path,
        "status": 200,
        "code": None,
        "duration_ms": 0.25,
        "fqdn": "www.example.com",
        "account": "memory",
        "provider_calls": 0,
    }


def json_logger(stream: io.StringIO) -> logging.Logger:
    """A logger as ``configure`` sets up the root one (JSON to one stream), apart from pytest's
    own capture handlers on the root."""
    logger = logging.getLogger(ACCESS_LOGGER + ".test")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger


@pytest.fixture
def json_stream() -> io.StringIO:
    return io.StringIO()


def formatted(values: dict[str, Any]) -> dict[str, Any]:
    """What ``JsonFormatter`` writes for the same access record, without its time."""
    message = f"{values['method']} {values['path']} {values['status']}"
    name = ACCESS_LOGGER + ".test"
    record = logging.LogRecord(name, logging.INFO, __file__, 1, message, None, None)
    record.fields = values
    line = json.loads(JsonFormatter().format(record))
    del line["time"]
    return line


def test_direct_line_is_the_json_formatters_line(json_stream: io.StringIO) -> None:
    """Outside a loop the line is written at once, key for key what JsonFormatter writes."""
    access = AccessLog(json_logger(json_stream))
    assert access.direct
    access.write(fields())
    line = json.loads(json_stream.getvalue())
    assert STAMP.fullmatch(line.pop("time"))
    assert line == formatted(fields())
    assert json_stream.getvalue().count("\n") == 1


@given(path=st.text(), client=st.none() | st.text())
def test_any_text_is_escaped_as_json_dumps_does(path: str, client: str | None) -> None:
    """Paths and client names with quotes, control or non-ASCII characters stay one JSON line."""
    stream = io.StringIO()
    AccessLog(json_logger(stream)).write(fields(path, client))
    text = stream.getvalue()
    line = json.loads(text)
    del line["time"]
    assert (text.count("\n"), line) == (1, formatted(fields(path, client)))


async def test_lines_wait_for_the_loop_to_turn(json_stream: io.StringIO) -> None:
    """In a loop, lines are buffered and written together once the loop turns."""
    access = AccessLog(json_logger(json_stream))
    access.write(fields("/a"))
    access.write(fields("/b"))
    assert json_stream.getvalue() == ""
    turned = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_soon(turned.set_result, None)  # after the flush
    await turned
    paths = [json.loads(line)["path"] for line in json_stream.getvalue().splitlines()]
    assert paths == ["/a", "/b"]


def test_other_setups_log_through_logging(caplog: pytest.LogCaptureFixture) -> None:
    """With any other handler in the way (here pytest's capture) the record goes to logging."""
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    access = AccessLog()
    assert not access.direct
    access.write(fields())
    access.flush()  # nothing buffered: nothing to do
    records = [(r.name, r.getMessage(), r.__dict__["fields"]) for r in caplog.records]
    assert records == [(ACCESS_LOGGER, "POST /records 200", fields())]


def test_console_format_logs_through_logging() -> None:
    """A readable console handler is not JSON: the line goes through logging and its formatter."""
    stream = io.StringIO()
    logger = json_logger(stream)
    logger.handlers[0].setFormatter(ConsoleFormatter())
    access = AccessLog(logger)
    access.write(fields())
    assert (access.direct, stream.getvalue()[8:].split()[:4]) == (
        False,
        ["INFO", "POST", "/records", "200"],
    )


def request_line(access: AccessLog, values: dict[str, Any]) -> None:
    """``AccessLog.request`` given the same values as ``fields`` holds."""
    facts = RequestFacts(
        values["request_id"],
        client=values["client"],
        fqdn=values["fqdn"],
        account=values["account"],
        provider_calls=values["provider_calls"],
    )
    access.request(
        facts,
        remote=values["remote"],
        method=values["method"],
        path=values["path"],
        status=values["status"],
        code=values["code"],
        duration_ms=values["duration_ms"],
    )


@given(
    path=st.text(),
    client=st.none() | st.text(),
    code=st.none() | st.text(),
    remote=st.none() | st.text(),
    duration=st.floats(min_value=0, max_value=1e6),
)
def test_request_line_is_the_written_line(
    path: str, client: str | None, code: str | None, remote: str | None, duration: float
) -> None:
    """``request`` writes, byte for byte but the time, the line ``write`` makes of its fields."""
    values = fields(path, client) | {"code": code, "remote": remote, "duration_ms": duration}
    by_request, by_write = io.StringIO(), io.StringIO()
    request_line(AccessLog(json_logger(by_request)), values)
    AccessLog(json_logger(by_write)).write(values)
    assert STAMP.sub("", by_request.getvalue()) == STAMP.sub("", by_write.getvalue())
    line = json.loads(by_request.getvalue())
    del line["time"]
    assert line == formatted(values)


def test_request_through_logging(caplog: pytest.LogCaptureFixture) -> None:
    """Not direct, ``request`` logs the record ``write`` would, with the same fields."""
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    request_line(AccessLog(), fields())
    records = [(r.name, r.getMessage(), r.__dict__["fields"]) for r in caplog.records]
    assert records == [(ACCESS_LOGGER, "POST /records 200", fields())]


@pytest.mark.parametrize(
    "moments",
    [
        (1_700_000_000.0004, 1_700_000_000.0009, 1_700_000_000.0011),  # one millisecond, the next
        (1_700_000_000.9994, 1_700_000_000.99996, 1_700_000_001.0),  # into the next second
        (1_700_000_059.999, 1_700_000_060.25, 1_700_000_060.2504),
    ],
)
def test_timestamp_is_the_json_formatters(
    json_stream: io.StringIO, monkeypatch: pytest.MonkeyPatch, moments: tuple[float, ...]
) -> None:
    """Lines written in the same millisecond share a timestamp; each is the one JsonFormatter
    writes for that moment (datetime's rounding included)."""
    access = AccessLog(json_logger(json_stream))
    for moment in moments:
        monkeypatch.setattr(time, "time", lambda moment=moment: moment)
        access.write(fields())
    stamps = [json.loads(line)["time"] for line in json_stream.getvalue().splitlines()]
    expected = [
        datetime.fromtimestamp(moment, UTC).isoformat(timespec="milliseconds") for moment in moments
    ]
    assert stamps == expected
