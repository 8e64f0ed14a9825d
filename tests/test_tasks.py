"""Owned background work: supervised tasks and loops, and single-flight lookups."""

from __future__ import annotations

import asyncio
import logging

import pytest

from sidecar.tasks import Backoff, Delays, SingleFlight, Tasks
from tests.conftest import eventually

QUICK = Backoff(initial=0.01, maximum=0.02, healthy_after=60)


async def test_a_failed_task_is_logged_by_name(caplog: pytest.LogCaptureFixture) -> None:
    """A spawned task that raises is logged with its name, and leaves the group."""
    tasks = Tasks("group")

    async def fail() -> None:
        raise ValueError("boom")

    task = tasks.spawn(fail(), name="job")
    with pytest.raises(ValueError, match="boom"):
        await task
    await eventually(lambda: len(tasks) == 0)
    failures = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.getMessage() for r in failures] == ["background task 'group: job' failed"]


class Backoffs:
    """A ``Tasks`` sleep that waits until the test lets it go; records the delays asked for."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self._go: asyncio.Queue[None] = asyncio.Queue()

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        await self._go.get()

    async def asked(self, count: int) -> None:
        """Wait until the loop has asked for its ``count``-th backoff."""
        await eventually(lambda: len(self.delays) == count)

    def end_one(self) -> None:
        self._go.put_nowait(None)


def within_jitter(delays: list[float], bases: list[float]) -> bool:
    return all(0.8 * b <= d <= 1.2 * b for d, b in zip(delays, bases, strict=True))


async def test_a_failing_loop_is_restarted_and_shown_down_meanwhile() -> None:
    """A loop that raises is down on the status during its backoff, running again after."""
    backoffs = Backoffs()
    tasks = Tasks("group", sleep=backoffs)
    runs = 0
    running = asyncio.Event()

    async def body() -> None:
        nonlocal runs
        runs += 1
        if runs < 3:
            raise RuntimeError(f"failure {runs}")
        running.set()
        await asyncio.Event().wait()  # then runs until cancelled

    tasks.loop("watch", body, QUICK)
    seen: list[dict[str, dict[str, object]]] = []
    for waits in (1, 2):
        await backoffs.asked(waits)
        seen.append(tasks.status())
        backoffs.end_one()
    await running.wait()
    seen.append(tasks.status())
    assert seen == [
        {"watch": {"running": False, "restarts": 0, "lastError": "RuntimeError: failure 1"}},
        {"watch": {"running": False, "restarts": 1, "lastError": "RuntimeError: failure 2"}},
        {"watch": {"running": True, "restarts": 2, "lastError": "RuntimeError: failure 2"}},
    ]
    await tasks.aclose()
    assert (tasks.status()["watch"]["running"], len(tasks)) == (False, 0)


@pytest.mark.parametrize(("healthy_after", "doubling"), [(60.0, [1, 2, 4, 8, 8]), (0.0, [1] * 5)])
async def test_the_backoff_doubles_and_starts_over_after_a_healthy_run(
    healthy_after: float, doubling: list[float]
) -> None:
    """Restarts wait 1, 2, 4 s... up to the ceiling; a run that lasted healthy_after resets it."""
    backoffs = Backoffs()
    tasks = Tasks("group", sleep=backoffs)

    async def body() -> None:
        raise RuntimeError("again")

    tasks.loop("flaky", body, Backoff(initial=1, maximum=8, healthy_after=healthy_after))
    for waits in range(1, 6):
        await backoffs.asked(waits)
        backoffs.end_one()
    await tasks.aclose()
    assert within_jitter(backoffs.delays, doubling), backoffs.delays


def test_delays_start_over_once_an_attempt_lasted_healthy_after() -> None:
    """The shared backoff: doubling to the ceiling, back to the start after a long attempt."""
    now = 0.0
    delays = Delays(Backoff(initial=1, maximum=4, healthy_after=10), now=lambda: now)
    seen: list[float] = []
    for lasted in (0, 1, 2, 3, 12, 0):
        delays.attempt()
        now += lasted
        seen.append(delays.next())
    assert within_jitter(seen, [1, 2, 4, 4, 1, 2]), seen


async def test_a_spawn_during_close_is_cancelled_with_the_rest() -> None:
    """Work spawned while the group closes (from a finally block) is cancelled and awaited,
    and its loop is not restarted: the group is empty when aclose returns."""
    tasks = Tasks("group")
    runs = 0
    started = asyncio.Event()

    async def late() -> None:
        nonlocal runs
        runs += 1
        raise RuntimeError("late")

    async def work() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            tasks.loop("late", late, QUICK)

    tasks.spawn(work(), name="work")
    await started.wait()
    await tasks.aclose()
    assert (len(tasks), runs, tasks.status()["late"]["running"]) == (0, 0, False)


async def test_a_loop_that_returns_is_restarted() -> None:
    """A loop body that returns (a stream that ended) is run again, not forgotten."""
    tasks = Tasks("group")
    runs = 0

    async def body() -> None:
        nonlocal runs
        runs += 1

    tasks.loop("once", body, QUICK)
    await eventually(lambda: runs >= 2)
    assert tasks.status()["once"]["lastError"] == "it returned"
    await tasks.aclose()


async def test_close_cancels_and_waits_for_every_task() -> None:
    """aclose cancels what runs and returns only when all of it has finished."""
    tasks = Tasks("group")
    finished: list[str] = []

    async def work(name: str) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            finished.append(name)

    for name in ("a", "b"):
        tasks.spawn(work(name), name=name)
    await asyncio.sleep(0)  # let them start, so that their finally blocks run
    await tasks.aclose()
    assert sorted(finished) == ["a", "b"]
    assert len(tasks) == 0


async def test_single_flight_shares_one_call() -> None:
    """Concurrent callers for one key share one call; another key gets its own."""
    flights: SingleFlight[str, int] = SingleFlight()
    calls: list[str] = []
    gate = asyncio.Event()

    async def work(key: str) -> int:
        calls.append(key)
        await gate.wait()
        return len(calls)

    waiting = [asyncio.create_task(flights.run("a", lambda: work("a"))) for _ in range(5)]
    other = asyncio.create_task(flights.run("b", lambda: work("b")))
    await eventually(lambda: len(calls) == 2)
    gate.set()
    assert await asyncio.gather(*waiting, other) == [2, 2, 2, 2, 2, 2]
    assert calls == ["a", "b"]
    assert len(flights) == 0


async def test_single_flight_does_not_cache_failures() -> None:
    """A failed flight fails every waiter, and the next call starts a new one."""
    flights: SingleFlight[str, str] = SingleFlight()
    attempts = 0

    async def flaky() -> str:
        nonlocal attempts
        attempts += 1
        await asyncio.sleep(0)
        if attempts == 1:
            raise ConnectionError("down")
        return "up"

    first = await asyncio.gather(
        flights.run("k", flaky), flights.run("k", flaky), return_exceptions=True
    )
    assert [type(e) for e in first] == [ConnectionError, ConnectionError]
    assert await flights.run("k", flaky) == "up"
    assert attempts == 2


async def test_cancelling_a_waiter_leaves_the_flight_to_the_others() -> None:
    """The first caller's cancellation stops only that caller; the others get the result."""
    flights: SingleFlight[str, str] = SingleFlight()
    gate = asyncio.Event()

    async def work() -> str:
        await gate.wait()
        return "done"

    owner = asyncio.create_task(flights.run("k", work))
    await asyncio.sleep(0)
    other = asyncio.create_task(flights.run("k", work))
    await asyncio.sleep(0)
    owner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await owner
    gate.set()
    assert await other == "done"


async def test_close_cancels_the_flights_in_the_air() -> None:
    """aclose cancels flights; their waiters see the cancellation, and a new call starts anew."""
    flights: SingleFlight[str, str] = SingleFlight()
    started = asyncio.Event()

    async def forever() -> str:
        started.set()
        await asyncio.Event().wait()
        return "never"

    waiter = asyncio.create_task(flights.run("k", forever))
    await started.wait()
    await flights.aclose()
    with pytest.raises(asyncio.CancelledError):
        await waiter

    async def quick() -> str:
        return "new"

    assert await flights.run("k", quick) == "new"


async def test_a_loop_that_swallows_its_cancellation_is_not_restarted_on_close() -> None:
    """A body that catches the cancellation and returns (like a stream with a stop event) ends
    the loop on close instead of being restarted forever."""
    tasks = Tasks("group")
    runs = 0
    started = asyncio.Event()

    async def body() -> None:
        nonlocal runs
        runs += 1
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            return  # swallowed, as some stream helpers do

    tasks.loop("stream", body, QUICK)
    await started.wait()
    await tasks.aclose()
    assert (runs, len(tasks), tasks.status()["stream"]["running"]) == (1, 0, False)


async def test_a_discarded_loop_is_stopped_and_no_longer_shown() -> None:
    """discard cancels a loop stopped on purpose and drops it from the status, not shown down."""
    tasks = Tasks("group")
    started = asyncio.Event()

    async def body() -> None:
        started.set()
        await asyncio.Event().wait()

    task = tasks.loop("watch", body, QUICK)
    await started.wait()
    tasks.discard("watch")
    tasks.discard("unknown")  # nothing to stop
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (tasks.status(), len(tasks)) == ({}, 0)
