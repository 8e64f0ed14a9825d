"""The table in force: unit tests of ``LiveConfig`` pinning, swapping and retiring."""

from __future__ import annotations

import asyncio

from sidecar.config.live import LiveConfig
from sidecar.providers.memory import MemoryProvider
from tests.builders import make_runtime


class Tracked(MemoryProvider):
    """A memory provider that remembers being closed."""

    def __init__(self) -> None:
        super().__init__()
        self.closed = 0

    async def aclose(self) -> None:
        self.closed += 1
        await super().aclose()


async def test_retire_closes_only_providers_no_table_uses() -> None:
    """A provider the new table keeps stays open; the one it dropped is closed."""
    shared, dropped = Tracked(), Tracked()
    live = LiveConfig(make_runtime([shared, dropped]))
    old = live.swap(make_runtime([shared]))
    await live.retire(old)
    assert (shared.closed, dropped.closed, live.generation) == (0, 1, 2)


async def test_retire_waits_for_the_requests_pinning_the_old_table() -> None:
    """A request still on the old table keeps its provider open until it finishes."""
    dropped = Tracked()
    live = LiveConfig(make_runtime([dropped]))
    pinned = live.pin()  # a request in progress
    old = live.swap(make_runtime([Tracked()]))
    retiring = asyncio.create_task(live.retire(old))
    await asyncio.sleep(0)  # let retire reach its wait (a yield, not a timing)
    assert (retiring.done(), dropped.closed, pinned is old) == (False, 0, True)
    live.release(pinned)  # it is answered
    await asyncio.wait_for(retiring, 5)
    assert dropped.closed == 1


async def test_retire_spares_a_provider_an_older_pinned_table_still_uses() -> None:
    """Gen 1 pinned, gen 2 retired: a provider gen 1 still uses is left for gen 1's retirement."""
    first_only = Tracked()
    live = LiveConfig(make_runtime([first_only]))
    pinned = live.pin()
    gen1 = live.swap(make_runtime([first_only, Tracked()]))
    gen2 = live.swap(make_runtime([Tracked()]))
    await live.retire(gen2)
    assert first_only.closed == 0
    live.release(pinned)
    await live.retire(gen1)
    assert first_only.closed == 1


async def test_reject_keeps_the_table_and_records_why() -> None:
    """A failed reload keeps the current generation; a later swap clears the error."""
    live = LiveConfig(make_runtime([Tracked()]))
    live.reject("zones[0].account: not defined")
    assert (live.generation, live.last_error, live.failed_reloads) == (
        1,
        "zones[0].account: not defined",
        1,
    )
    live.swap(make_runtime([Tracked()]))
    assert (live.generation, live.last_error, live.failed_reloads) == (2, None, 1)
