"""Following every object of a kind (in all namespaces, or in one) by list + watch.

The sibling of :class:`~sidecar.credentials.watch.ObjectWatch` for a whole collection (the
operator's DNSRecords): list in pages (``limit`` and ``continue``), remember the list's
``resourceVersion``, watch from it with bookmarks, list again on ``410 Gone``. What is kept of
each object is the :class:`CollectionSink`'s business: the watch hands it the raw objects and
says when the view it feeds may have lost changes (``lost``), so nothing here holds the objects.
``watch_once`` is one pass; ``watch_forever`` loops it with the package's one backoff.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp

from sidecar.credentials.objects import KubernetesObject, ObjectList, WatchEvent
from sidecar.credentials.watch import (
    ApiError,
    Lister,
    keep_watching,
    open_reply,
    raise_status,
)
from sidecar.settings import WatchSettings

PAGE = 500  # objects per list page


class CollectionSink(Protocol):
    """Where a :class:`CollectionWatch` delivers what it reads."""

    def replace(self, scope: str | None, items: Sequence[KubernetesObject]) -> None:
        """A complete list of ``scope`` (a namespace; ``None``: all of them) replaces what was
        known of it."""

    def apply(self, scope: str | None, kind: str, obj: KubernetesObject) -> None:
        """One watch event: ``ADDED``, ``MODIFIED`` or ``DELETED``."""

    def connected(self, scope: str | None) -> None:
        """The watch of ``scope`` is live: every change from now on will be delivered."""

    def lost(self, scope: str | None, reason: str) -> None:
        """The watch of ``scope`` failed; changes may be missed until it is live again."""


@dataclass
class CollectionWatch:
    describe: str  # for messages: "DNSRecords in all namespaces"
    lister: Lister  # a generated list_* call with its path arguments bound
    sink: CollectionSink
    scope: str | None = None  # the namespace watched; None: all
    settings: WatchSettings = field(default_factory=WatchSettings)
    page: int = PAGE
    forbidden_hint: str = "grant get, list and watch on it"
    error: str | None = None  # why the last pass failed, while it stays failed
    resource_version: str | None = None
    synced: asyncio.Event = field(default_factory=asyncio.Event)

    async def watch_forever(self) -> None:
        """Keep following (``keep_watching``, as ``ObjectWatch``); a failure is told to the sink
        (``lost``)."""
        await keep_watching(self, self.settings, self._failed)

    def _failed(self, err: Exception) -> str:
        self.error = self._explain(err)
        self.sink.lost(self.scope, self.error)
        self.synced.set()  # callers waiting for the first list get the error instead
        return self.error

    async def watch_once(self) -> None:
        """List (unless a resourceVersion is known), then watch until the stream ends."""
        if self.resource_version is None:
            await self._list()
        await self._watch()

    async def _list(self) -> None:
        items: list[KubernetesObject] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"limit": self.page}
            if token:
                kwargs["_continue"] = token
            reply = await self._request(request_timeout=self.settings.list_timeout, **kwargs)
            async with reply:
                body: ObjectList[KubernetesObject] = await reply.json()
            items.extend(body.get("items") or [])
            metadata = body.get("metadata", {})
            token = metadata.get("continue")
            if not token:
                break
        self.resource_version = str(metadata.get("resourceVersion") or "") or None
        self.sink.replace(self.scope, items)
        self.error = None
        self.synced.set()

    async def _watch(self) -> None:
        reply = await self._request(
            request_timeout=aiohttp.ClientTimeout(
                connect=self.settings.list_timeout, sock_read=self.settings.watch_seconds + 30
            ),
            watch=True,
            allow_watch_bookmarks=True,
            timeout_seconds=self.settings.watch_seconds,
            resource_version=self.resource_version,
        )
        async with reply:
            self.error = None  # connected again
            self.sink.connected(self.scope)
            async for line in reply.content:
                if line.strip():
                    self._event(json.loads(line))

    async def _request(
        self, *, request_timeout: float | aiohttp.ClientTimeout, **kwargs: Any
    ) -> aiohttp.ClientResponse:
        return await open_reply(
            self.lister, _preload_content=False, _request_timeout=request_timeout, **kwargs
        )

    def _event(self, event: WatchEvent[KubernetesObject]) -> None:
        kind = event.get("type")
        obj: Any = event.get("object") or {}
        if kind == "ERROR":
            raise_status(obj)
        version = (obj.get("metadata") or {}).get("resourceVersion")
        if version:
            self.resource_version = str(version)
        if kind in ("ADDED", "MODIFIED", "DELETED"):
            self.sink.apply(self.scope, kind, obj)

    def _explain(self, err: Exception) -> str:
        what = self.describe
        if isinstance(err, ApiError):
            if err.status == 403:
                hint = self.forbidden_hint
                return f"the API server forbids reading {what} ({err.reason}); {hint}"
            return f"the API server answered {err.status} for {what}: {err.reason}"
        if isinstance(err, TimeoutError | asyncio.TimeoutError):
            return f"the API server did not answer in time for {what}"
        return f"cannot reach the API server for {what}: {err}"
