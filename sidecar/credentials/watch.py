"""Following one named Kubernetes object by list + watch, kept current.

One :class:`ObjectWatch` follows one object through ``fieldSelector=metadata.name=NAME`` (so a Role
limited by ``resourceNames`` suffices): list, remember the ``resourceVersion``, watch from it with
bookmarks, and list again on ``410 Gone``. ``watch_once`` does one list-and-watch pass and
returns; ``watch_forever`` only loops it, with the package's one jittered backoff
(``sidecar.tasks.Backoff``) after every end: clean, Gone or failed. The calls come in as a
``lister`` (a generated ``kubernetes_asyncio`` list call with its path arguments bound, see
``credentials.kubernetes``), answering raw aiohttp responses.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, NoReturn, Protocol, cast

import aiohttp

from sidecar.credentials.objects import (
    KubernetesObject,
    ObjectList,
    ObjectMeta,
    ObjectT,
    Status,
    WatchEvent,
)
from sidecar.settings import WatchSettings
from sidecar.tasks import Backoff, Delays

log = logging.getLogger(__name__)


class ApiError(Exception):
    """The API server refused a request (the lister raises one with ``status`` too)."""

    def __init__(self, status: int, reason: str | None) -> None:
        super().__init__(f"{status}: {reason}")
        self.status = status
        self.reason = reason


class Gone(Exception):
    """The resourceVersion we watch from was compacted away: list again."""


Lister = Callable[..., Awaitable[Any]]


@dataclass
class ObjectWatch(Generic[ObjectT]):
    """The current state of one named object; ``None`` while it does not exist."""

    describe: str  # for messages: "Secret dns-system/cf-personal"
    lister: Lister  # a generated list_* call with its path arguments bound
    name: str
    settings: WatchSettings = field(default_factory=WatchSettings)
    kind: str = "object"
    on_change: Callable[[str], None] = lambda kind: None
    object: ObjectT | None = None
    synced: asyncio.Event = field(default_factory=asyncio.Event)
    error: str | None = None  # why the last pass failed, while it stays failed
    resource_version: str | None = None

    async def watch_forever(self) -> None:
        """Keep following the object (see :func:`keep_watching`)."""
        await keep_watching(self, self.settings, self._failed)

    def _failed(self, err: Exception) -> str:
        self.error = _describe_error(err, self.describe)
        self.synced.set()  # callers waiting for the first state get the error instead
        return self.error

    async def watch_once(self) -> None:
        """List (unless a resourceVersion is known), then watch until the stream ends."""
        if self.resource_version is None:
            await self._list()
        await self._watch()

    async def _list(self) -> None:
        reply = await self._request(watch=False, request_timeout=self.settings.list_timeout)
        async with reply:
            body: ObjectList[ObjectT] = await reply.json()
        items = body.get("items") or []
        self.resource_version = str(body.get("metadata", {}).get("resourceVersion") or "") or None
        self._set(items[0] if items else None)
        self.error = None
        self.synced.set()

    async def _watch(self) -> None:
        reply = await self._request(
            watch=True,
            request_timeout=aiohttp.ClientTimeout(
                connect=self.settings.list_timeout, sock_read=self.settings.watch_seconds + 30
            ),
        )
        async with reply:
            self.error = None  # connected again
            async for line in reply.content:
                if line.strip():
                    event: WatchEvent[ObjectT] = json.loads(line)
                    self._event(event)

    async def _request(
        self, *, watch: bool, request_timeout: float | aiohttp.ClientTimeout
    ) -> aiohttp.ClientResponse:
        kwargs: dict[str, Any] = {
            "field_selector": f"metadata.name={self.name}",
            "_preload_content": False,
            "_request_timeout": request_timeout,
        }
        if watch:
            kwargs |= {
                "watch": True,
                "allow_watch_bookmarks": True,
                "timeout_seconds": self.settings.watch_seconds,
                "resource_version": self.resource_version,
            }
        return await open_reply(self.lister, **kwargs)

    def _event(self, event: WatchEvent[ObjectT]) -> None:
        kind = event.get("type")
        obj = event.get("object") or cast("ObjectT", {})
        if kind == "ERROR":
            raise_status(cast("Status", obj))
        metadata = _metadata(obj)
        version = metadata.get("resourceVersion")
        if version:
            self.resource_version = str(version)
        if kind == "BOOKMARK":
            return
        if metadata.get("name") != self.name:
            return
        self._set(None if kind == "DELETED" else obj)

    def _set(self, obj: ObjectT | None) -> None:
        before = _content(self.object)
        self.object = obj
        if _content(obj) != before:
            self.on_change(self.kind)


async def open_reply(lister: Lister, **kwargs: Any) -> aiohttp.ClientResponse:
    """The open reply of a list or watch request: ``Gone`` for 410, ``ApiError`` for another
    error status (the reply released)."""
    try:
        reply: aiohttp.ClientResponse = await lister(**kwargs)
    except ApiError as err:
        if err.status == 410:
            raise Gone from err
        raise
    if reply.status == 410:
        reply.release()
        raise Gone
    if reply.status >= 400:
        text = (await reply.text())[:300]
        reply.release()
        raise ApiError(reply.status, reason_of(text, reply.reason))
    return reply


def raise_status(status: Status) -> NoReturn:
    """A watch's ERROR event: ``Gone`` for 410 (list again), else ``ApiError``."""
    if status.get("code") == 410:
        raise Gone
    raise ApiError(status.get("code") or 500, status.get("message"))


class Followed(Protocol):
    """One watch that ``keep_watching`` runs pass after pass."""

    describe: str
    resource_version: str | None

    async def watch_once(self) -> None: ...


async def keep_watching(
    watch: Followed, settings: WatchSettings, failed: Callable[[Exception], str]
) -> None:
    """Run ``watch`` pass after pass, for ever. Every end of a pass waits a backoff before the
    next one: a clean end, ``410 Gone`` (the next pass lists again) and a failure (``failed``
    records it and says why; logged) alike, so a server that ends or expires every watch at once
    is not hammered; the backoff starts over after a pass that lasted ``backoff_max``."""
    delays = Delays(
        Backoff(
            initial=settings.backoff_initial,
            maximum=settings.backoff_max,
            healthy_after=settings.backoff_max,
        )
    )
    while True:
        delays.attempt()
        try:
            await watch.watch_once()
            delay = delays.next()
            log.debug("%s: the watch ended; watching again in %.1f s", watch.describe, delay)
        except Gone:
            watch.resource_version = None
            delay = delays.next()
            log.info("%s: resourceVersion expired, listing again in %.1f s", watch.describe, delay)
        except asyncio.CancelledError:
            raise
        except Exception as err:  # noqa: BLE001 - every failure is retried, and reported
            why = failed(err)
            delay = delays.next()
            log.warning("%s: %s; retrying in %.1f s", watch.describe, why, delay)
        await asyncio.sleep(delay)


def _metadata(obj: KubernetesObject) -> ObjectMeta:
    return obj.get("metadata") or {}


def _content(obj: KubernetesObject | None) -> Any:
    if obj is None:
        return None
    return {key: value for key, value in obj.items() if key != "metadata"}


def reason_of(text: str, fallback: str | None) -> str:
    """The ``message`` of a Status body, else the text, else ``fallback``."""
    try:
        return str(json.loads(text).get("message") or fallback)
    except (ValueError, AttributeError):
        return text or str(fallback)


def _describe_error(err: Exception, what: str) -> str:
    if isinstance(err, ApiError):
        if err.status == 403:
            return (
                f"the API server forbids reading {what} ({err.reason}); the Role needs get, list "
                "and watch on it (resourceNames may name it)"
            )
        return f"the API server answered {err.status} for {what}: {err.reason}"
    if isinstance(err, TimeoutError | asyncio.TimeoutError):
        return f"the API server did not answer in time for {what}"
    return f"cannot reach the API server for {what}: {err}"
