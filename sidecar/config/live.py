"""The routing table in force: read by every request, replaced whole by a reload.

A request pins the :class:`Runtime` it starts with (``pin``) and finishes on it, whatever
reloads happen meanwhile. Providers that a new runtime no longer uses are closed only once no
request pins the runtime that had them (``retire``).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace

from sidecar.config.runtime import Runtime

log = logging.getLogger(__name__)


class LiveConfig:
    """Holds the current :class:`Runtime`; a swap is one attribute assignment (atomic)."""

    def __init__(self, initial: Runtime, *, config_file: str | None = None) -> None:
        self.current = initial
        self.config_file = config_file
        self.last_error: str | None = None
        self.failed_reloads = 0
        self._users: dict[int, int] = {}  # requests running, by generation (none: absent)
        self._pinned: dict[int, Runtime] = {}  # generations some request still runs on
        self._drained: dict[int, asyncio.Event] = {}

    @property
    def generation(self) -> int:
        return self.current.generation

    def pin(self) -> Runtime:
        """The runtime in force now, pinned until ``release`` (a request pins one for its whole
        life)."""
        runtime = self.current
        generation = runtime.generation
        users = self._users.get(generation, 0)
        if not users:
            self._pinned[generation] = runtime
        self._users[generation] = users + 1
        return runtime

    def release(self, runtime: Runtime) -> None:
        generation = runtime.generation
        users = self._users[generation] - 1
        if users:
            self._users[generation] = users
        else:
            del self._users[generation]
            del self._pinned[generation]
            drained = self._drained.pop(generation, None)
            if drained is not None:
                drained.set()

    def swap(self, new: Runtime) -> Runtime:
        """Put ``new`` in force with the next generation number; returns the old one."""
        old = self.current
        self.current = replace(new, generation=old.generation + 1)
        self.last_error = None
        return old

    def reject(self, error: str) -> None:
        """A reload failed: keep serving the current table, remember why."""
        self.last_error = error
        self.failed_reloads += 1

    async def retire(self, old: Runtime) -> None:
        """Close ``old``'s providers once no request pins ``old``, unless the current table or a
        generation still pinned by a request has them (that one's retirement closes them)."""
        if self._users.get(old.generation):
            drained = self._drained.setdefault(old.generation, asyncio.Event())
            await drained.wait()
        keep = {
            id(account.provider)
            for runtime in (self.current, *self._pinned.values())
            for account in runtime.accounts.values()
        }
        for account in old.accounts.values():
            if id(account.provider) not in keep:
                try:
                    await account.provider.aclose()
                except Exception:
                    log.exception("closing the provider of account %s failed", account.name)
