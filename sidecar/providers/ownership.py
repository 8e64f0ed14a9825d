"""Who made a record set: the ownership marker every provider writes (SPEC sections 6, 9, 10).

A record set the sidecar creates carries a marker: the zone's ``comment`` followed by the owner,
``managed by dns-sidecar (owner=home-cluster, class=public)``. Cloudflare keeps it in each
record's comment, RFC 2136 in a companion TXT record, the memory provider beside the set.

The owner is the deployment (``DNS_SIDECAR_OWNER_ID``, distinct per cluster or deployment that
shares a zone) and the DNSClass of the client that wrote it (none for a client without
``dnsClass``). Sweeps prune only what this deployment wrote for a DNSClass it serves; a marker
from before owners existed (the bare comment) is ours but of no known class, so it is reported,
never pruned, and an upsert through the sidecar rewrites it in the new form.

The whole marker fits Cloudflare's comment limit (100 characters on the free plan): an owner or
class too long to fit is written as ``#`` and the first 10 hex digits of its SHA-256, and read
back by comparing against the same digest of the names the reader knows.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

MAX_MARKER = 100  # Cloudflare's comment limit on the free plan
DEFAULT_DEPLOYMENT = "dns-sidecar"
_DIGEST = 10  # hex digits of a shortened part
_SHORTENED = 1 + _DIGEST  # "#" and the digits
# the longest suffix: " (owner=#xxxxxxxxxx, class=#xxxxxxxxxx)"
MAX_COMMENT = MAX_MARKER - len(" (owner=, class=)") - 2 * _SHORTENED
_SUFFIX = re.compile(r" \(owner=(?P<owner>[^,()]+)(?:, class=(?P<cls>[^,()]+))?\)\Z")


def _short(part: str) -> str:
    return "#" + hashlib.sha256(part.encode()).hexdigest()[:_DIGEST]


@dataclass(frozen=True, slots=True)
class Owner:
    """Who writes: this deployment, for the DNSClass of the calling client (if it has one)."""

    deployment: str = DEFAULT_DEPLOYMENT
    dns_class: str | None = None

    def marker(self, comment: str) -> str:
        """The marker this owner writes under the zone's ``comment``; at most 100 characters
        (a class, then an owner, too long to fit is shortened to its digest)."""
        parts = [self.deployment, self.dns_class]
        text = _format(comment, *parts)
        for index in (1, 0):
            part = parts[index]
            if len(text) <= MAX_MARKER:
                return text
            if part is not None and len(part) > _SHORTENED:
                parts[index] = _short(part)
                text = _format(comment, *parts)
        if len(text) <= MAX_MARKER:
            return text
        raise ValueError(
            f"The ownership comment {comment!r} leaves no room for the owner within "
            f"{MAX_MARKER} characters; keep it to {MAX_COMMENT} characters."
        )


def _format(comment: str, deployment: str | None, dns_class: str | None) -> str:
    if dns_class is None:
        return f"{comment} (owner={deployment})"
    return f"{comment} (owner={deployment}, class={dns_class})"


@dataclass(frozen=True, slots=True)
class Mark:
    """What a marker found on a record says. ``deployment`` None: a marker from before owners
    (the bare comment), ours but of unknown deployment and class."""

    deployment: str | None = None
    dns_class: str | None = None

    @property
    def legacy(self) -> bool:
        return self.deployment is None

    def _is(self, part: str | None, name: str | None) -> bool:
        if part is None or name is None:
            return part is None and name is None
        return part == name or part == _short(name)

    def made_by(self, owner: Owner) -> bool:
        """This owner wrote it: same deployment and same DNSClass (or both without one)."""
        return (
            not self.legacy
            and self._is(self.deployment, owner.deployment)
            and self._is(self.dns_class, owner.dns_class)
        )

    def writable_by(self, owner: Owner) -> bool:
        """Under ``strict`` ownership, ``owner`` may change or remove the set: it made it, or
        the marker predates owners (and is then rewritten in the new form)."""
        return self.legacy or self.made_by(owner)

    def of_deployment(self, deployment: str) -> bool:
        return not self.legacy and self._is(self.deployment, deployment)

    def of_class(self, dns_class: str) -> bool:
        return self._is(self.dns_class, dns_class)


def read(text: str | None, comment: str) -> Mark | None:
    """The mark in a marker text found at the provider, or None when it is not ours (no text,
    another comment, or a suffix that is not an owner)."""
    if text is None or not text.startswith(comment):
        return None
    if len(text) == len(comment):
        return Mark()
    found = _SUFFIX.match(text, len(comment))
    if found is None:
        return None
    return Mark(found["owner"], found["cls"])
