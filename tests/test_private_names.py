"""No private name of another package in sidecar/, tests/ or bench/ (SPEC section 8)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.private_names import Finding, check_paths, check_source, main

REPO = Path(__file__).resolve().parent.parent

# the shape of the protocol port's code before it moved to aiohttp's public API
BEFORE = textwrap.dedent(
    """
    import hashlib
    import concurrent.futures._base
    from aiohttp import web
    from aiohttp.http_writer import _serialize_headers

    class GuardedHandler(web.RequestHandler):
        def data_received(self, data):
            heads = self._request_count
            super().data_received(data)
            self._lingering_time = 0.0

        def _process_keepalive(self):
            pass

    class Answer(web.StreamResponse):
        _own = b""

        async def prepare(self, request):
            self._own = _serialize_headers("HTTP/1.1 200 OK", super()._headers)

    def keyed() -> hashlib._Hash: ...
    """
)


def test_the_tree_uses_no_private_name_of_another_package() -> None:
    """sidecar/, tests/ and bench/ as they are: nothing found."""
    assert check_paths([REPO / name for name in ("sidecar", "tests", "bench")]) == []


def test_the_code_as_it_was_is_caught() -> None:
    """Each way the protocol port used aiohttp's (and hashlib's) internals is one finding:
    a private import, a private module, private state read or set through a subclass (also
    through ``super()``), a private method overridden, a private attribute of a module."""
    base = "aiohttp.web_protocol.RequestHandler"
    assert check_source(BEFORE, "before.py") == [
        Finding("before.py", 3, "imports the private module concurrent.futures._base"),
        Finding(
            "before.py", 5, "imports the private name _serialize_headers from aiohttp.http_writer"
        ),
        Finding("before.py", 9, f"touches {base}'s private _request_count"),
        Finding("before.py", 11, f"touches {base}'s private _lingering_time"),
        Finding(
            "before.py",
            13,
            "overrides aiohttp.web_protocol.RequestHandler's private _process_keepalive",
        ),
        Finding("before.py", 20, "touches aiohttp.helpers.HeadersMixin's private _headers"),
        Finding("before.py", 22, "reaches the private name _Hash (hashlib._Hash)"),
    ]


def test_our_own_private_names_and_public_overrides_pass() -> None:
    """Private names of our own classes, and public methods of a third-party base overridden
    (``handle_error``, ``data_received``), are not findings."""
    source = textwrap.dedent(
        """
        from aiohttp import web
        from sidecar.protocol.connections import Guard

        class Ours(Guard):
            def more(self):
                return self._update()

        class Handler(web.RequestHandler):
            def handle_error(self, request, status=500, exc=None, message=None):
                return super().handle_error(request, status, exc, message)

            def data_received(self, data):
                self.mine = self.keepalive_timeout
        """
    )
    assert check_source(source) == []


def test_the_command_exits_1_with_each_finding_on_a_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``python -m tests.private_names PATH``: one line per finding, exit status 1; a clean
    tree: nothing printed, exit status 0."""
    (tmp_path / "before.py").write_text(BEFORE)
    assert main([str(tmp_path)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert (len(lines), lines[-1]) == (
        7,
        f"{tmp_path / 'before.py'}:22: reaches the private name _Hash (hashlib._Hash)",
    )
    assert (main([str(REPO / "sidecar")]), capsys.readouterr().out) == (0, "")
