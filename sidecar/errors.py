"""The one exception tree of dns-sidecar.

Every error that can reach a caller is a :class:`SidecarError`. Each class carries the HTTP
status and protocol code it becomes (SPEC section 2), so the protocol layer turns any of them
into a response in one place (``sidecar.protocol.request_path``) and handlers never build error
bodies themselves::

    SidecarError                      (500 INTERNAL_ERROR)
    ├── ClientError                   the caller's fault, 4xx
    │   ├── InvalidRequest            400 INVALID_REQUEST
    │   │   └── HeadersTooLarge       431 INVALID_REQUEST (the HTTP parser refused the head)
    │   ├── InvalidRecord             400 INVALID_RECORD
    │   ├── AuthFailed                401 AUTH_FAILED
    │   ├── DomainNotAllowed          403 DOMAIN_NOT_ALLOWED
    │   ├── RecordNotFound            404 RECORD_NOT_FOUND
    │   ├── NotFound                  404 NOT_FOUND
    │   ├── MethodNotAllowed          405 METHOD_NOT_ALLOWED
    │   ├── RecordConflict            409 RECORD_CONFLICT
    │   ├── PayloadTooLarge           413 PAYLOAD_TOO_LARGE
    │   └── RateLimited               429 RATE_LIMITED (+ Retry-After)
    └── UpstreamError                 transient or provider-side, 5xx
        ├── ProviderError             502 PROVIDER_ERROR
        └── ProviderUnavailable       503 PROVIDER_UNAVAILABLE

:class:`ConfigError` is separate: it never reaches the protocol, it stops ``check`` and keeps a
bad routing table from replacing a good one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar


class SidecarError(Exception):
    """Base of every error that becomes a protocol response."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "INTERNAL_ERROR"

    def __init__(self, message: str, *, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = dict(details or {})

    @property
    def headers(self) -> dict[str, str]:
        """Extra response headers this error needs (``Retry-After`` for instance)."""
        return {}


class ClientError(SidecarError):
    """The request cannot succeed as sent; retrying it unchanged will not help."""

    status = 400


class InvalidRequest(ClientError):
    status = 400
    code = "INVALID_REQUEST"


class HeadersTooLarge(InvalidRequest):
    """The request head is over the parser's limits; the protocol code stays INVALID_REQUEST."""

    status = 431


class InvalidRecord(ClientError):
    status = 400
    code = "INVALID_RECORD"


class AuthFailed(ClientError):
    status = 401
    code = "AUTH_FAILED"

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message, details={"reason": reason})
        self.reason = reason


class DomainNotAllowed(ClientError):
    status = 403
    code = "DOMAIN_NOT_ALLOWED"


class RecordNotFound(ClientError):
    status = 404
    code = "RECORD_NOT_FOUND"


class NotFound(ClientError):
    status = 404
    code = "NOT_FOUND"


class MethodNotAllowed(ClientError):
    status = 405
    code = "METHOD_NOT_ALLOWED"

    def __init__(self, message: str, *, allowed: Iterable[str]) -> None:
        super().__init__(message, details={"allowed": sorted(allowed)})
        self.allowed = sorted(allowed)

    @property
    def headers(self) -> dict[str, str]:
        return {"Allow": ", ".join(self.allowed)}


class RecordConflict(ClientError):
    status = 409
    code = "RECORD_CONFLICT"


class PayloadTooLarge(ClientError):
    status = 413
    code = "PAYLOAD_TOO_LARGE"


class RateLimited(ClientError):
    status = 429
    code = "RATE_LIMITED"

    def __init__(
        self, message: str, *, retry_after: float, details: Mapping[str, Any] | None = None
    ) -> None:
        seconds = max(1, int(-(-retry_after // 1)))  # whole seconds, rounded up, at least 1
        super().__init__(message, details={**(details or {}), "retryAfter": seconds})
        self.retry_after = seconds

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class UpstreamError(SidecarError):
    """The provider failed; the same request may succeed later."""

    status = 502


class ProviderError(UpstreamError):
    status = 502
    code = "PROVIDER_ERROR"


class ProviderUnavailable(UpstreamError):
    status = 503
    code = "PROVIDER_UNAVAILABLE"


class ConfigError(Exception):
    """A routing table or setting is invalid; ``problems`` lists every finding."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = list(problems)
        listed = "\n".join(f"  - {problem}" for problem in self.problems)
        super().__init__(f"{source}: {len(self.problems)} problem(s)\n{listed}")
