"""Live reload of the routing table file.

The file is usually a mounted ConfigMap, which the kubelet updates by swapping a ``..data`` symlink
in its directory, any number of times; ``config.watching`` follows it. Events are debounced, the
content hashed (an unchanged file is not rebuilt), the new table validated and built in full, and
only then swapped in. A file that fails keeps the old table serving; the error is logged, counted
and shown on ``/status``. A periodic re-check catches anything the watcher missed. Both loops are
supervised (``sidecar.tasks``): one that fails is logged, shown as down on ``/status`` and
restarted with backoff.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from sidecar.clock import Clock
from sidecar.config import loader, runtime, watching
from sidecar.config.live import LiveConfig
from sidecar.coordination.base import Coordination
from sidecar.credentials.store import CredentialStore
from sidecar.errors import ConfigError
from sidecar.settings import Settings
from sidecar.tasks import Tasks

log = logging.getLogger(__name__)


class Reloader:
    def __init__(
        self,
        live: LiveConfig,
        path: Path,
        settings: Settings,
        store: CredentialStore,
        clock: Clock,
        *,
        loaded_digest: str | None,
        on_result: Callable[[str], None] = lambda result: None,  # success | failure
        coordination: Coordination,
    ) -> None:
        self.live = live
        self.path = path
        self.settings = settings
        self.store = store
        self.clock = clock
        self.loaded_digest = loaded_digest
        self.on_result = on_result
        self.coordination = coordination
        self.tasks = Tasks("reload")
        self._lock = asyncio.Lock()

    async def reload_once(self) -> bool:
        """Re-read the file; swap in a new table if it changed and is valid, once the Secrets
        and DNSClasses it names have been read (as at start-up)."""
        async with self._lock:
            try:
                table = loader.read(self.path)
                if table.digest == self.loaded_digest:
                    self._good_again()
                    return False
                new = runtime.build(
                    table.spec,
                    self.settings,
                    source=str(self.path),
                    store=self.store,
                    clock=self.clock,
                    previous=self.live.current,
                    coordination=self.coordination,
                )
            except (ConfigError, ValueError) as err:
                return self._rejected(str(err))
            if not await self._read_credentials(new):
                return False
            old = self.live.swap(new)
            self.loaded_digest = table.digest
            self.store.narrow(new.credentials, new.dns_classes)
            self._retire(old)
        log.info(
            "routing table reloaded",
            extra={"fields": {"file": str(self.path), "generation": self.live.generation}},
        )
        self.on_result("success")
        return True

    async def _read_credentials(self, new: runtime.Runtime) -> bool:
        """Follow what ``new`` names beside what the table in force names, and wait (bounded)
        for the first read of each, so that ``new`` serves its first request with them. If
        that fails, the reload is rejected and ``new``'s own providers are closed."""
        current = self.live.current
        try:
            await self.store.track(
                (*current.credentials, *new.credentials),
                (*current.dns_classes, *new.dns_classes),
            )
            await self.store.wait_synced(self.settings.kubernetes.sync_timeout)
        except Exception as err:  # noqa: BLE001 - any failure rejects the reload, logged below
            self.store.narrow(current.credentials, current.dns_classes)
            await self._discard(new)
            return self._rejected(f"cannot follow the Secrets and DNSClasses it names: {err!r}")
        return True

    async def _discard(self, new: runtime.Runtime) -> None:
        """Close the providers of a table that never went in force (not those it shares)."""
        keep = {id(account.provider) for account in self.live.current.accounts.values()}
        for account in new.accounts.values():
            if id(account.provider) not in keep:
                try:
                    await account.provider.aclose()
                except Exception:
                    log.exception("closing the provider of account %s failed", account.name)

    def _good_again(self) -> None:
        """The file holds the table being served again, after a rejected edit: clear the error."""
        if self.live.last_error is None:
            return
        self.live.last_error = None
        log.info(
            "the routing table on disk is good again (the one being served); "
            "the last reload error is cleared",
            extra={"fields": {"file": str(self.path), "generation": self.live.generation}},
        )

    def _rejected(self, error: str) -> bool:
        if error != self.live.last_error:
            log.error("routing table not reloaded, the old one keeps serving: %s", error)
        self.live.reject(error)
        self.on_result("failure")
        return False

    def _retire(self, old: runtime.Runtime) -> None:
        self.tasks.spawn(self.live.retire(old), name=f"retire generation {old.generation}")

    async def watch_forever(self, stop: asyncio.Event) -> None:
        """Reload on every change in the file's directory until ``stop`` is set."""
        debounce_ms = self.settings.table.reload_debounce_ms
        await watching.watch_files([self.path], self._reload, stop, debounce_ms=debounce_ms)

    async def recheck_forever(self, stop: asyncio.Event) -> None:
        """The safety net: look at the file every ``reload_interval`` seconds."""
        interval = self.settings.table.reload_interval
        await watching.recheck_files(interval, self._reload, stop)

    async def _reload(self) -> bool:
        return await self.reload_once()  # looked up at each change (tests wrap it)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Watch and re-check in supervised loops while the block runs (a loop that fails is
        logged, shown on ``/status`` and restarted with backoff)."""
        stop = asyncio.Event()
        for loop in (self.watch_forever, self.recheck_forever):
            self.tasks.loop(loop.__name__, functools.partial(loop, stop))
        try:
            yield
        finally:
            stop.set()
            await self.tasks.aclose()
