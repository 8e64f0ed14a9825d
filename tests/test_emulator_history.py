"""The emulator's state history: every state a record set passes through, per write."""

from __future__ import annotations

from typing import Any

import aiohttp

from sidecar.emulator.history import History
from sidecar.emulator.state import State
from tests.conftest import RunningEmulator
from tests.test_emulator import ZONE, api


async def history(
    session: aiohttp.ClientSession, cf: RunningEmulator, since: str = "0"
) -> tuple[int, Any]:
    async with session.get(f"{cf.root}/__emulator/history", params={"since": since}) as reply:
        return reply.status, await reply.json(content_type=None)


def states(page: dict[str, Any]) -> list[tuple[int, str, str, list[str]]]:
    return [(e["seq"], e["name"], e["type"], e["values"]) for e in page["entries"]]


async def test_each_write_leaves_one_state_per_record_set(
    session: aiohttp.ClientSession, cf: RunningEmulator
) -> None:
    """One state per write and set (a batch once, a failed batch none); ``since`` pages."""
    records = f"/zones/{ZONE}/dns_records"
    _, one, _ = await api(
        session, cf, "POST", records, {"type": "A", "name": "h", "content": "192.0.2.1"}
    )
    await api(session, cf, "POST", records, {"type": "TXT", "name": "h", "content": "x"})
    batch = {
        "deletes": [{"id": one["result"]["id"]}],
        "posts": [
            {"type": "A", "name": "h", "content": "192.0.2.3"},
            {"type": "A", "name": "h", "content": "192.0.2.2"},
        ],
    }
    assert (await api(session, cf, "POST", records + "/batch", batch))[0] == 200
    failed = {"posts": [{"type": "A", "name": "h", "content": "192.0.2.9"}, {"type": "Z"}]}
    assert (await api(session, cf, "POST", records + "/batch", failed))[0] == 400
    _, listed, _ = await api(session, cf, "GET", records + "?type=TXT")
    await api(session, cf, "DELETE", f"{records}/{listed['result'][0]['id']}")

    status, page = await history(session, cf)
    assert status == 200
    assert states(page) == [
        (1, "h.example.com", "A", ["192.0.2.1"]),
        (2, "h.example.com", "TXT", ["x"]),
        (3, "h.example.com", "A", ["192.0.2.2", "192.0.2.3"]),
        (4, "h.example.com", "TXT", []),
    ]
    assert (page["next"], page["dropped"]) == (4, 0)
    assert all(e["zone"] == "example.com" for e in page["entries"])
    times = [e["time"] for e in page["entries"]]
    assert times == sorted(times)
    _, later = await history(session, cf, since="2")
    assert [seq for seq, *_ in states(later)] == [3, 4]
    assert await history(session, cf, since="x") == (
        400,
        {"error": "since must be a sequence number"},
    )


def test_the_history_is_bounded_and_counts_what_it_dropped() -> None:
    """Past its limit the oldest entries go, and ``dropped`` says how many."""
    state = State()
    state.history = History(limit=3)
    zone = state.add_zone("example.com")
    for i in range(5):
        state.create(zone, {"type": "A", "name": f"n{i}", "content": "192.0.2.1"})
    page = state.history.page()
    assert [e["name"] for e in page["entries"]] == [f"n{i}.example.com" for i in (2, 3, 4)]
    assert (page["next"], page["dropped"], page["limit"], len(state.history)) == (5, 2, 3, 3)


def test_an_update_that_renames_leaves_both_states() -> None:
    """A PUT moving a record to another name leaves the old name's state and the new one's."""
    state = State()
    zone = state.add_zone("example.com")
    made = state.create(zone, {"type": "A", "name": "old", "content": "192.0.2.1"})
    state.update(
        zone, made["id"], {"type": "A", "name": "new", "content": "192.0.2.1"}, partial=False
    )
    assert states(dict(state.history.page(since=1))) == [
        (2, "new.example.com", "A", ["192.0.2.1"]),
        (3, "old.example.com", "A", []),
    ]
