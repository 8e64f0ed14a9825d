"""What an endpoint's handler is given: the request, and what the request path found out
before calling it (the routing table pinned for the request, the body, the path parameters,
the client that signed it)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from sidecar.auth.clients import Client
from sidecar.config.runtime import Runtime
from sidecar.observability.context import RequestFacts

PathParams = dict[str, str]


@dataclass(slots=True)
class Call:
    request: web.BaseRequest
    runtime: Runtime  # pinned until the request is answered, whatever reloads meanwhile
    body: bytes
    params: PathParams  # the endpoint template's parameters, unquoted
    client: Client | None  # None: no client is configured and unsigned requests may pass
    facts: RequestFacts  # for the access line: what the handler learns (the name, the account)


Handler = Callable[[Call], Awaitable[web.StreamResponse]]
