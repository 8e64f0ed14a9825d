"""An account's Cloudflare credentials (kept apart from the SDK, which is a large import)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Auth:
    """An API token, or a global API key with its email."""

    token: str | None = None
    key: str | None = None
    email: str | None = None

    def __repr__(self) -> str:
        return "Auth(token)" if self.token else f"Auth(key, email={self.email})"
