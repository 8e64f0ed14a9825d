"""Owned background work: named tasks, supervised loops, and single-flight lookups.

Modelled on kopf's ``aiotasks``. A :class:`Tasks` group is the one way to start work that runs
beside requests:

- :meth:`Tasks.spawn` starts a named one-off task; its failure is logged, never lost.
- :meth:`Tasks.loop` runs a forever-loop; when it raises it is logged, shown as down in
  :meth:`Tasks.status`, and restarted after a :class:`Backoff`.
- :meth:`Tasks.aclose` cancels everything and waits for it; an error a task raised while
  being cancelled is logged too. Work spawned while the group closes is cancelled with the rest.

:class:`Backoff` is the one retry policy of the package (the supervised loops here, the
Kubernetes watches): a wait that doubles up to a ceiling, with jitter, and starts over once an
attempt has run for a while; :class:`Delays` is its state for one retried thing.

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
import time
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


Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class Backoff:
    """Waits before retrying: ``initial`` seconds, doubling up to ``maximum``, each with ±20 %
    jitter; an attempt that ran ``healthy_after`` seconds or more starts the doubling over."""

    initial: float = 0.5
    maximum: float = 30.0
    healthy_after: float = 60.0


class Delays:
    """The growing wait between the attempts of one retried thing, under a :class:`Backoff`."""

    def __init__(self, policy: Backoff, now: Callable[[], float] = time.monotonic) -> None:
        self._policy = policy
        self._now = now
        self._next = policy.initial
        self._started = now()

    def attempt(self) -> None:
        """An attempt starts now (how long it lasts decides whether the doubling starts over)."""
        self._started = self._now()

    def next(self) -> float:
        """Seconds to wait after the attempt that just ended (jittered)."""
        if self._now() - self._started >= self._policy.healthy_after:
            self._next = self._policy.initial
        delay = self._next * random.uniform(0.8, 1.2)  # noqa: S311 - jitter only
        self._next = min(self._next * 2, self._policy.maximum)
        return delay


class Tasks:
    """A group of owned tasks, closed together."""

    def __init__(self, name: str, *, sleep: Sleep = asyncio.sleep) -> None:
        self.name = name
        self._sleep = sleep  # how a loop waits out its backoff; tests pass one they control
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loops: dict[str, LoopState] = {}
        self._loop_tasks: dict[str, asyncio.Task[Any]] = {}
        self._closing = False

    def __len__(self) -> int:
        return len(self._tasks)

    def spawn(self, work: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
        """Run ``work`` as a named task of this group; its failure is logged. While the group
        closes, the task is cancelled at once (and awaited by ``aclose``)."""
        task = asyncio.get_running_loop().create_task(work, name=f"{self.name}: {name}")
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        if self._closing:
            task.cancel()
        return task

    def loop(
        self,
        name: str,
        body: Callable[[], Awaitable[None]],
        backoff: Backoff | None = None,
    ) -> asyncio.Task[Any]:
        """Run ``body`` (a loop meant to run until cancelled), restarting it when it raises or
        returns, with exponential backoff and jitter."""
        state = self._loops[name] = LoopState(running=not self._closing)
        task = self.spawn(self._supervise(name, body, state, backoff or Backoff()), name=name)
        self._loop_tasks[name] = task
        return task

    def discard(self, name: str) -> None:
        """Stop loop ``name`` on purpose: cancelled (``aclose`` still awaits it) and no longer
        shown by :meth:`status`."""
        self._loops.pop(name, None)
        task = self._loop_tasks.pop(name, None)
        if task is not None:
            task.cancel()

    def status(self) -> dict[str, dict[str, Any]]:
        """Each supervised loop: running or down, how often restarted, the last error."""
        return {name: state.as_dict() for name, state in sorted(self._loops.items())}

    async def aclose(self) -> None:
        """Cancel every task and wait for each, also those spawned meanwhile; errors they raise
        meanwhile are logged. Once closed, the group may be used again."""
        self._closing = True  # a loop whose body swallows the cancellation is not restarted
        try:
            while pending := list(self._tasks):
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
        finally:
            self._closing = False

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        for name in [name for name, loop in self._loop_tasks.items() if loop is task]:
            del self._loop_tasks[name]
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
        delays = Delays(backoff)
        while True:
            delays.attempt()
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
                delay = delays.next()
                log.exception("%s: loop %r failed; restarting in %.1f s", self.name, name, delay)
            else:
                if self._stopping():  # the body took the cancellation and returned
                    state.running = False
                    return
                delay = delays.next()
                log.error("%s: loop %r ended; restarting in %.1f s", self.name, name, delay)
            state.running = False
            state.last_error = why
            await self._sleep(delay)
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
