"""The accept loop of the protocol port survives a connection whose set-up fails."""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

import pytest

from tests.conftest import SECRET, StartSidecar, make_settings


async def test_one_connection_failing_its_set_up_leaves_the_accept_loop_running(
    start_sidecar: StartSidecar, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A burst where one accepted socket fails to become a connection: that socket is closed,
    the others are served, and the accept loop neither fails nor logs an error."""
    sidecar = await start_sidecar(make_settings(hmac_secret=SECRET.decode()), secret=SECRET)
    loop = asyncio.get_running_loop()
    connect = loop.connect_accepted_socket
    failures = [OSError(22, "Invalid argument")]

    async def flaky(factory: Any, sock: socket.socket, **kwargs: Any) -> Any:
        if failures:
            raise failures.pop()
        return await connect(factory, sock, **kwargs)

    monkeypatch.setattr(loop, "connect_accepted_socket", flaky)
    with caplog.at_level(logging.WARNING):
        streams = [await asyncio.open_connection("127.0.0.1", sidecar.port) for _ in range(3)]
        request = b"GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        for _, writer in streams:
            writer.write(request)
        answers = [await asyncio.wait_for(reader.read(), 10) for reader, _ in streams]
        for _, writer in streams:
            writer.close()
        after = await sidecar.caller.call("GET", "/health")
    assert not failures
    assert sorted(answer.split(b" ", 2)[1] if answer else b"closed" for answer in answers) == [
        b"404",
        b"404",
        b"closed",
    ]
    assert after.status == 200
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
