"""Per-request facts gathered along the way for the one log line each request gets."""

from __future__ import annotations

import contextvars
import itertools
import secrets
from dataclasses import dataclass


@dataclass(slots=True)
class RequestFacts:
    request_id: str
    client: str | None = None
    fqdn: str | None = None
    account: str | None = None
    provider_calls: int = 0


_current: contextvars.ContextVar[RequestFacts | None] = contextvars.ContextVar(
    "dns_sidecar_request", default=None
)


def begin(request_id: str) -> RequestFacts:
    """Start collecting facts for the request running in this task."""
    facts = RequestFacts(request_id)
    _current.set(facts)
    return facts


def count_provider_call() -> None:
    """Providers call this once per API call they make."""
    facts = _current.get()
    if facts is not None:
        facts.provider_calls += 1


class RequestIds:
    """Request ids: a random prefix per process, then a counter (unique, cheap, sortable)."""

    def __init__(self) -> None:
        self._prefix = secrets.token_hex(6)
        self._count = itertools.count(1)

    def next(self) -> str:
        return f"{self._prefix}-{next(self._count)}"
