"""The DNS server's address as the routing table gives it: ``host``, ``host:port``,
``[v6]:port`` or a bare IPv6 address; port 53 by default."""

from __future__ import annotations

DEFAULT_PORT = 53


def split_server(server: str) -> tuple[str, int]:
    """(host, port); ``ValueError`` when the port is not a number."""
    text = server.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else DEFAULT_PORT
    if text.count(":") == 1:
        host, port = text.split(":")
        return host, int(port)
    return text, DEFAULT_PORT
