"""Errors as Cloudflare reports them."""

from __future__ import annotations


class CloudflareError(Exception):
    """An error as Cloudflare reports it: HTTP status, numeric code, message."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def invalid(code: int, message: str) -> CloudflareError:
    return CloudflareError(400, code, message)
