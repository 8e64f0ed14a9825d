"""The protocol's endpoints by path and method: the table the request path's ``match_endpoint``
step looks a request up in.

aiohttp's router tries resource after resource (a coroutine each, a regex for a templated
path, every prefix of the path in turn); the protocol has four endpoints on three paths, so
the protocol port has no router: aiohttp's low-level server hands every request to the request
path (``connections.Listener``), and this table finds the endpoint: a dict lookup for a fixed
path, a split on ``/`` for a templated one.

The templates mean what aiohttp's do: ``{name}`` is one path segment, not empty and without
braces; a name listed in ``may_be_empty`` takes any segment, the empty one included. Segments
are matched in the raw path (``%2F`` does not split one), then unquoted as aiohttp does
(``%2F`` -> ``/``, ``%25`` -> ``%``). An endpoint's label (in the metrics) is its template.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field

from aiohttp import web

from sidecar.protocol.call import Handler, PathParams

Serve = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]  # the whole request path


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One path (a template, which is also its label) and its handler per method."""

    label: str
    handlers: dict[str, Handler] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Template:
    endpoint: Endpoint
    segments: tuple[str | None, ...]  # a fixed segment, or None for a parameter
    names: tuple[str, ...]  # the parameters, in order
    may_be_empty: frozenset[str]

    def match(self, segments: list[str]) -> PathParams | None:
        params: PathParams = {}
        names = iter(self.names)
        for fixed, given in zip(self.segments, segments, strict=True):
            if fixed is not None:
                if given != fixed:
                    return None
                continue
            name = next(names)
            if name not in self.may_be_empty and (not given or "{" in given or "}" in given):
                return None
            params[name] = _unquote(given)
        return params


class Endpoints:
    """Endpoints by path; ``match`` finds the one for a request's raw path.

    The match of a templated path is remembered (up to ``REMEMBERED`` paths, then forgotten
    all at once): a reconcile asks for the same records again and again. The parameters
    handed out are shared between the requests of one path, so they are read, never changed.
    """

    REMEMBERED = 4096

    def __init__(self) -> None:
        self._fixed: dict[str, Endpoint] = {}
        self._templated: dict[int, list[_Template]] = {}  # by number of segments
        self._by_label: dict[str, Endpoint] = {}
        self._matched: dict[str, tuple[Endpoint, PathParams]] = {}

    def add(
        self, method: str, path: str, handler: Handler, *, may_be_empty: Collection[str] = ()
    ) -> None:
        """``handler`` answers ``method`` at ``path`` (a fixed path or a template)."""
        endpoint = self._by_label.get(path)
        if endpoint is None:
            endpoint = self._by_label[path] = Endpoint(path)
            if "{" not in path:
                self._fixed[path] = endpoint
            else:
                template = _template(endpoint, frozenset(may_be_empty))
                self._templated.setdefault(len(template.segments), []).append(template)
        endpoint.handlers[method] = handler
        self._matched.clear()

    def match(self, path: str) -> tuple[Endpoint, PathParams] | None:
        """The endpoint at ``path`` (raw, as ``URL.path_safe``) and its parameters, if any."""
        endpoint = self._fixed.get(path)
        if endpoint is not None:
            return endpoint, {}
        found = self._matched.get(path)
        if found is None:
            found = self._search(path)
            if found is None:
                return None  # not remembered: any path can be asked for
            if len(self._matched) >= self.REMEMBERED:
                self._matched.clear()
            self._matched[path] = found
        return found

    def _search(self, path: str) -> tuple[Endpoint, PathParams] | None:
        segments = path.split("/")
        for template in self._templated.get(len(segments), ()):
            params = template.match(segments)
            if params is not None:
                return template.endpoint, params
        return None


def _template(endpoint: Endpoint, may_be_empty: frozenset[str]) -> _Template:
    segments: list[str | None] = []
    names: list[str] = []
    for segment in endpoint.label.split("/"):
        if segment.startswith("{") and segment.endswith("}"):
            segments.append(None)
            names.append(segment[1:-1])
        elif "{" in segment or "}" in segment:
            raise ValueError(f"a parameter must be a whole segment: {endpoint.label!r}")
        else:
            segments.append(segment)
    unknown = may_be_empty - set(names)
    if unknown:
        raise ValueError(f"{endpoint.label!r} has no parameter {', '.join(sorted(unknown))}")
    return _Template(endpoint, tuple(segments), tuple(names), may_be_empty)


def _unquote(segment: str) -> str:
    """What aiohttp makes of a path parameter: the raw path keeps ``%2F`` and ``%25``."""
    if "%" not in segment:
        return segment
    return segment.replace("%2F", "/").replace("%25", "%")
