"""The protocols of shared state, implemented in-process (``local``) and on Redis."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol


class NonceStore(Protocol):
    """Where the nonces seen within the timestamp window are remembered."""

    def __len__(self) -> int:
        """Nonces held here (0 when they live elsewhere)."""
        ...

    async def record(self, nonce: str, signed_at: float, expires: float, now: float) -> None:
        """Remember ``nonce`` until ``expires``; ``AuthFailed`` when it was seen already,
        ``RateLimited`` when there is no room, ``ProviderUnavailable`` when it cannot be
        recorded (never let through unchecked)."""
        ...

    def status(self) -> dict[str, Any]:
        """Facts for ``/status``; no I/O."""
        ...


class Lease(Protocol):
    """A write lock, held."""

    def ensure(self, needed: float) -> None:
        """Raise ``ProviderUnavailable`` unless the lock stays ours ``needed`` seconds more."""
        ...


class WriteLocks(Protocol):
    """One lock per (zone, name, type): writes to one name are serialised."""

    def hold(self, key: tuple[str, str, str]) -> AbstractAsyncContextManager[Lease]: ...


@dataclass(frozen=True, slots=True)
class BudgetState:
    """An account's request budget as last seen (for ``/status`` and health messages)."""

    requests: int
    per_seconds: float
    remaining: int
    blocked_for: float


class RequestBudget(Protocol):
    """An account's provider request budget, and the block after the provider's 429."""

    account: str
    requests: int
    per_seconds: float

    async def spend(self) -> None:
        """Count one call, or raise ``RateLimited`` if it must not be sent."""
        ...

    async def block(self, seconds: float) -> float:
        """The provider answered 429: stop sending for ``seconds``; returns the wait."""
        ...

    def state(self) -> BudgetState:
        """The budget as last known; no I/O."""
        ...


class ZoneVersions(Protocol):
    """A version per zone, moved by every write, so read caches know when they are stale."""

    async def current(self, zone: str) -> str: ...

    async def bump(self, zone: str) -> None: ...


class Turns(Protocol):
    """Periodic jobs that one replica does for all (a sweep per interval)."""

    async def take(self, name: str, lease: float) -> bool:
        """Whether this replica has turn ``name`` for the next ``lease`` seconds; the holder
        that asks again keeps it."""
        ...


class Coordination(Protocol):
    """Everything replicas share, and how to make one account's budget."""

    @property
    def nonces(self) -> NonceStore: ...

    @property
    def locks(self) -> WriteLocks: ...

    @property
    def versions(self) -> ZoneVersions: ...

    @property
    def turns(self) -> Turns: ...

    def budget(self, account: str, requests: int, per_seconds: float) -> RequestBudget: ...

    def problem(self) -> str | None:
        """Why the shared state cannot serve now (``None`` when it can); no I/O."""
        ...

    def status(self) -> dict[str, Any]:
        """Facts for ``/status``; no I/O."""
        ...

    async def start(self) -> None: ...

    async def aclose(self) -> None: ...
