"""Owned background work: named tasks, supervised loops, and single-flight lookups.

Modelled on kopf's ``aiotasks``. A :class:`Tasks` group is the one way to start work that runs
beside requests:

- :meth:`Tasks.spawn` starts a named one-off task; its failure is logged, never lost.
- :meth:`Tasks.loop` runs a forever-loop; when it raises it is logged, shown as down in
  :meth:`Tasks.status`, and restarted after a backoff that doubles up to a ceiling (reset once
  the loop has run for a while without failing).
- :meth:`Tasks.aclose` cancels everything and waits for it; an error a task raised while
  being cancelled is logged too.

:class:`SingleFlight` shares one in-flight call per key between concurrent callers. The flight
belongs to the helper, not to the first caller: cancelling any waiter (the first included)
stops only that waiter, the others still get the result. A flight that fails hands its error to
every waiter and is then forgotten: failures are not cached, the next call starts anew.
Results are not cached either (callers keep what they want to keep). ``aclose`` cancels the
flights; their waiters then see ``CancelledError``.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Coroutine, Hashable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)


@dataclass
class LoopState:
    """What ``/status`` shows of one supervised loop."""

    running: bool = True
    restarts: int = 0
    last_error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"running": self.running, "restarts": self.restarts, "lastError": self.last_error}


@dataclass(frozen=True)
class Backoff:
    initial: float = 0.5
    maximum: float = 30.0
    healthy_after: float = 60.0  # a loop that ran this long before failing starts over


class Tasks:
    """A group of owned tasks, closed together."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loops: dict[str, LoopState] = {}
        self._closing = False

    def __len__(self) -> int:
        return len(self._tasks)

    def spawn(self, work: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
        """Run ``work`` as a named task of this group; its failure is logged."""
        self._closing = False
        task = asyncio.get_running_loop().create_task(work, name=f"{self.name}: {name}")
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def loop(
        self,
        name: str,
        body: Callable[[], Awaitable[None]],
        backoff: Backoff | None = None,
    ) -> asyncio.Task[Any]:
        """Run ``body`` (a loop meant to run until cancelled), restarting it when it raises or
        returns, with exponential backoff and jitter."""
        state = self._loops[name] = LoopState()
        return self.spawn(self._supervise(name, body, state, backoff or Backoff()), name=name)

    def status(self) -> dict[str, dict[str, Any]]:
        """Each supervised loop: running or down, how often restarted, the last error."""
        return {name: state.as_dict() for name, state in sorted(self._loops.items())}

    @property
    def down(self) -> list[str]:
        return sorted(name for name, state in self._loops.items() if not state.running)

    async def aclose(self) -> None:
        """Cancel every task and wait for each; errors they raise meanwhile are logged."""
        self._closing = True  # a loop whose body swallows the cancellation is not restarted
        pending = list(self._tasks)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            log.error("background task %r failed", task.get_name(), exc_info=error)

    async def _supervise(
        self,
        name: str,
        body: Callable[[], Awaitable[None]],
        state: LoopState,
        backoff: Backoff,
    ) -> None:
        delay = backoff.initial
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                await body()
                why = "it returned"
            except asyncio.CancelledError:
                state.running = False
                raise
            except Exception as err:
                if self._stopping():  # failed while being stopped: nothing to restart
                    state.running = False
                    raise asyncio.CancelledError from err
                why = f"{type(err).__name__}: {err}"
                log.exception("%s: loop %r failed; restarting in %.1f s", self.name, name, delay)
            else:
                if self._stopping():  # the body took the cancellation and returned
                    state.running = False
                    return
                log.error("%s: loop %r ended; restarting in %.1f s", self.name, name, delay)
            state.running = False
            state.last_error = why
            if loop.time() - started >= backoff.healthy_after:
                delay = backoff.initial
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))  # noqa: S311 - jitter only
            delay = min(delay * 2, backoff.maximum)
            state.restarts += 1
            state.running = True

    def _stopping(self) -> bool:
        task = asyncio.current_task()
        return self._closing or (task is not None and task.cancelling() > 0)


class SingleFlight(Generic[K, T]):
    """Concurrent callers for one key share one in-flight call (see the module docstring)."""

    def __init__(self) -> None:
        self._flights: dict[K, asyncio.Task[T]] = {}

    def __len__(self) -> int:
        return len(self._flights)

    async def run(self, key: K, work: Callable[[], Awaitable[T]]) -> T:
        """The result of the flight for ``key``, started with ``work`` if none is in the air."""
        flight = self._flights.get(key)
        if flight is None:
            flight = asyncio.ensure_future(work())
            self._flights[key] = flight
            flight.add_done_callback(lambda done: self._land(key, done))
        return await asyncio.shield(flight)

    def forget(self, key: K) -> None:
        """Later callers start a new flight; the one in the air finishes for its waiters."""
        self._flights.pop(key, None)

    async def aclose(self) -> None:
        flights = list(self._flights.values())
        self._flights.clear()
        for flight in flights:
            flight.cancel()
        await asyncio.gather(*flights, return_exceptions=True)

    def _land(self, key: K, flight: asyncio.Task[T]) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]
        if not flight.cancelled():
            flight.exception()  # retrieved: waiters got it; no "never retrieved" warning
