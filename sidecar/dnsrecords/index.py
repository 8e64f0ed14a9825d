"""The DNSRecords of the served DNSClasses, indexed as the sweeps and the upsert path ask for
them: by DNSClass, and by (DNSClass, record key). Fed by the list + watch (it is their
:class:`~sidecar.credentials.collection.CollectionSink`); implements
:class:`~sidecar.dnsrecords.view.DnsRecordView`.

Only DNSRecords of a served class are kept, in their small form (:mod:`.parse`). ``generation``
moves whenever the index may have missed a change: a (re)list, a watch that failed, the set of
served classes or namespaces changing, the view turned off.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sidecar.credentials.objects import DNSRecord, KubernetesObject
from sidecar.dnsrecords.parse import Unreadable, parse, where
from sidecar.dnsrecords.wanted import WantedRecord
from sidecar.records import RecordKey

Ref = tuple[str, str]  # namespace, name
SHOWN_UNREADABLE = 20  # at most this many unreadable DNSRecords are listed on /status


@dataclass
class _Scope:
    """One watch's state: a namespace, or all of them (``None``)."""

    listed: bool = False
    live: bool = False
    error: str | None = None


class DnsRecordIndex:
    def __init__(self, default_ttl: Callable[[str], int | None] = lambda name: None) -> None:
        self._default_ttl = default_ttl
        self._classes: frozenset[str] = frozenset()
        # each DNSRecord kept once, indexed by class and ref and by class and key (the record
        # itself, a list only when a key holds several): 10 000 in a few MiB
        self._by_class: dict[str, dict[Ref, WantedRecord]] = {}
        self._at: dict[str, dict[RecordKey, WantedRecord | list[WantedRecord]]] = {}
        self._unreadable: dict[Ref, Unreadable] = {}
        self._scopes: dict[str | None, _Scope] = {}
        self._off: str | None = "not started"
        self._generation = 0
        self._changed = asyncio.Event()

    # --- what is served (the follower decides) ---------------------------------------------

    def serve(self, classes: Iterable[str], namespaces: Sequence[str]) -> None:
        """Serve ``classes``, from one watch per namespace (none: one across all of them). The
        watches start over, so what they held is dropped until they have listed again."""
        self._classes = frozenset(classes)
        scopes: list[str | None] = [*namespaces] or [None]
        self._scopes = {scope: _Scope() for scope in scopes}
        self._off = None
        self._clear()

    def off(self, reason: str, classes: Iterable[str] = ()) -> None:
        """Nothing is read for ``classes`` (served, but unreadable), for ``reason`` (shown on
        ``/status``)."""
        self._off = reason
        self._classes = frozenset(classes)
        self._scopes = {}
        self._clear()

    @property
    def off_reason(self) -> str | None:
        return self._off

    @property
    def never_listed(self) -> str | None:
        """Why a scope has never been listed, when its watch fails (a 403, no API server): then
        waiting for a DNSRecord to be delivered is pointless. A watch that dropped after its
        list is not this: it resumes, and what it held stays."""
        errors = [s.error for s in self._scopes.values() if s.error and not s.listed]
        return "; ".join(errors) or None

    # --- the view ---------------------------------------------------------------------------

    @property
    def synced(self) -> bool:
        scopes = self._scopes.values()
        return self._off is None and bool(scopes) and all(s.listed and s.live for s in scopes)

    @property
    def generation(self) -> int:
        return self._generation

    @property
    def namespaces(self) -> tuple[str, ...]:
        return tuple(scope for scope in self._scopes if scope is not None)

    def classes(self) -> frozenset[str]:
        return self._classes

    def wanted(self, dns_class: str) -> Sequence[WantedRecord]:
        return list(self._by_class.get(dns_class, {}).values())

    def at(self, dns_class: str, key: RecordKey) -> Sequence[WantedRecord]:
        found = self._at.get(dns_class, {}).get(key)
        if found is None:
            return []
        return [found] if isinstance(found, WantedRecord) else list(found)

    def default_ttl(self, dns_class: str) -> int | None:
        return self._default_ttl(dns_class)

    def status(self) -> dict[str, Any]:
        errors = [scope.error for scope in self._scopes.values() if scope.error]
        namespaces = [scope for scope in self._scopes if scope is not None]
        return {
            "enabled": self._off is None,
            "off": self._off,
            "synced": self.synced,
            "generation": self._generation,
            "namespaces": namespaces or ("all" if self._scopes else None),
            "classes": {name: len(self._by_class.get(name, {})) for name in sorted(self._classes)},
            "lastError": "; ".join(errors) or None,
            "unreadable": [
                {
                    "dnsRecord": f"{found.namespace}/{found.name}",
                    "dnsClass": found.dns_class,
                    "reason": found.reason,
                }
                for found in list(self._unreadable.values())[:SHOWN_UNREADABLE]
            ],
        }

    async def changed(self, seconds: float) -> None:
        """Wait (at most ``seconds``) for the next change."""
        event = self._changed
        try:
            await asyncio.wait_for(event.wait(), seconds)
        except TimeoutError:
            return

    # --- the sink the watches feed ----------------------------------------------------------

    def replace(self, scope: str | None, items: Sequence[KubernetesObject]) -> None:
        if scope is None:
            self._clear()
        else:
            refs = {ref for per in self._by_class.values() for ref in per}
            for ref in [ref for ref in (*refs, *self._unreadable) if ref[0] == scope]:
                self._remove(ref)
            self._moved()
        state = self._scopes.setdefault(scope, _Scope())
        state.listed, state.live, state.error = True, False, None
        for item in items:
            self._put(item)  # type: ignore[arg-type]  # DNSRecords: the lister's kind

    def apply(self, scope: str | None, kind: str, obj: KubernetesObject) -> None:
        record: DNSRecord = obj  # type: ignore[assignment]  # DNSRecords: the lister's kind
        self._remove(where(record))
        if kind != "DELETED":
            self._put(record)
        self._signal()

    def connected(self, scope: str | None) -> None:
        state = self._scopes.setdefault(scope, _Scope())
        state.live, state.error = True, None
        self._signal()

    def lost(self, scope: str | None, reason: str) -> None:
        state = self._scopes.setdefault(scope, _Scope())
        state.live, state.error = False, reason
        self._moved()  # what it holds stays (a resumed watch delivers what it missed)

    # --- inside -----------------------------------------------------------------------------

    def _put(self, obj: DNSRecord) -> None:
        found = parse(obj)
        if found is None or found.dns_class not in self._classes:
            return
        ref = (found.namespace, found.name)
        if isinstance(found, Unreadable):
            self._unreadable[ref] = found
            return
        self._by_class.setdefault(found.dns_class, {})[ref] = found
        at = self._at.setdefault(found.dns_class, {})
        there = at.get(found.key)
        if there is None:
            at[found.key] = found
        elif isinstance(there, WantedRecord):
            at[found.key] = [there, found]
        else:
            there.append(found)

    def _remove(self, ref: Ref) -> None:
        self._unreadable.pop(ref, None)
        for dns_class, per in self._by_class.items():  # a handful of classes
            old = per.pop(ref, None)
            if old is not None:
                at = self._at[dns_class]
                there = at[old.key]
                rest = [] if isinstance(there, WantedRecord) else [r for r in there if r is not old]
                if not rest:
                    del at[old.key]
                else:
                    at[old.key] = rest[0] if len(rest) == 1 else rest
                return

    def _clear(self) -> None:
        self._by_class.clear()
        self._at.clear()
        self._unreadable.clear()
        self._moved()

    def _moved(self) -> None:
        self._generation += 1
        self._signal()

    def _signal(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()
