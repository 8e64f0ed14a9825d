"""The Kubernetes objects read here, as the API server sends them (raw JSON, camelCase keys).

``TypedDict``s, as kopf types its raw bodies: nothing is converted, ``mypy --strict`` checks each
key the code reads. Every key may be absent (``total=False``): the API server, an admission
webhook or a hand-written object may leave any of them out, and the readers say what is missing.
Only the keys this service reads are listed.
"""

from __future__ import annotations

from typing import Generic, Literal, TypedDict, TypeVar


class ObjectMeta(TypedDict, total=False):
    name: str
    namespace: str
    resourceVersion: str


class KubernetesObject(TypedDict, total=False):
    """Any object: what a watch needs to follow it (its name and version)."""

    apiVersion: str
    kind: str
    metadata: ObjectMeta


class Secret(KubernetesObject, total=False):
    """A ``v1`` Secret; ``data`` maps each key to its value, base64-encoded."""

    type: str
    data: dict[str, str]


class SecretKeySelector(TypedDict, total=False):
    """``spec.hmacAuth.secretRef`` of a DNSClass: a key of a Secret."""

    name: str
    namespace: str
    key: str


class HmacAuth(TypedDict, total=False):
    """``spec.hmacAuth`` of a DNSClass: an inline ``secret`` (wins), else ``secretRef``."""

    secret: str
    secretRef: SecretKeySelector
    algorithm: str  # SHA256 (the operator's default) or SHA512


class DNSClassSpec(TypedDict, total=False):
    server: str  # where the operator sends this class's requests
    hmacAuth: HmacAuth
    defaultTTL: int  # the TTL the operator sends for a DNSRecord without spec.ttl


class DNSClass(KubernetesObject, total=False):
    """A cluster-scoped ``dns.homelab.mortenolsen.pro/v1alpha1`` DNSClass."""

    spec: DNSClassSpec


class DNSClassRef(TypedDict, total=False):
    name: str


class DNSRecordMetadata(TypedDict, total=False):
    """``spec.metadata`` of a DNSRecord (``int32``s in the CRD): MX priority; SRV all three."""

    priority: int
    weight: int
    port: int


class DNSRecordSpec(TypedDict, total=False):
    type: str
    domain: str
    subdomain: str
    dnsClassRef: DNSClassRef
    values: list[str]
    ttl: int
    metadata: DNSRecordMetadata


class DNSRecord(KubernetesObject, total=False):
    """A namespaced ``dns.homelab.mortenolsen.pro/v1alpha1`` DNSRecord (its status unread)."""

    spec: DNSRecordSpec


class Status(TypedDict, total=False):
    """What the API server says instead of an object: in an ``ERROR`` watch event."""

    code: int
    reason: str
    message: str


ObjectT = TypeVar("ObjectT", bound=KubernetesObject)


# ``continue`` (a keyword, hence this form): set when a list was cut into pages (``limit``)
ListMeta = TypedDict("ListMeta", {"resourceVersion": str, "continue": str}, total=False)


class ObjectList(TypedDict, Generic[ObjectT], total=False):
    """A list response: the objects, and the version to watch from."""

    metadata: ListMeta
    items: list[ObjectT]


EventType = Literal["ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"]


class WatchEvent(TypedDict, Generic[ObjectT], total=False):
    """One line of a watch stream. ``object`` is the object (only its ``metadata`` for a
    ``BOOKMARK``), or a :class:`Status` for an ``ERROR``."""

    type: EventType
    object: ObjectT
