"""One DNSRecord, reduced to what the sidecar needs of it: what it wants published.

The operator's admission webhook admits an MX DNSRecord only with bare host names in
``spec.values`` and the priority in ``spec.metadata.priority``, and an SRV only with bare targets
and ``spec.metadata.{priority,weight,port}`` (``api/v1alpha1/dnsrecord_types.go``: ``int32``s);
its client sends the values as they are and leaves the metadata out.
:meth:`WantedRecord.full_values` puts the two back together: the values a provider should
hold (``10 mail.example.com``, ``10 5 5060 sip.example.com``), in canonical form.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sidecar.errors import InvalidRecord
from sidecar.records import RecordKey
from sidecar.records.values import canonical_values

# the types whose values the operator sends without their leading numbers
WITH_METADATA = frozenset({"MX", "SRV"})
_FIELDS = {"MX": ("priority",), "SRV": ("priority", "weight", "port")}


@dataclass(frozen=True, slots=True)
class RecordMetadata:
    """``spec.metadata`` of a DNSRecord: ``None`` where it is not set."""

    priority: int | None = None
    weight: int | None = None
    port: int | None = None

    def missing(self, kind: str) -> tuple[str, ...]:
        """The fields a bare value of type ``kind`` needs that are not set."""
        return tuple(name for name in _FIELDS.get(kind, ()) if getattr(self, name) is None)

    def prefix(self, kind: str) -> str:
        """What goes before a bare host of type ``kind``: ``10`` (MX), ``10 5 5060`` (SRV)."""
        return " ".join(str(getattr(self, name)) for name in _FIELDS[kind])

    def describe(self, kind: str) -> str:
        """``priority=10, weight=5, port=5060``, the fields of ``kind`` (for messages)."""
        return ", ".join(f"{name}={getattr(self, name)}" for name in _FIELDS.get(kind, ()))


def is_bare(kind: str, value: str) -> bool:
    """A value of type ``kind`` sent without its numbers: one word for an MX or an SRV."""
    return kind in WITH_METADATA and len(value.split()) == 1


def complete(kind: str, values: Iterable[str], metadata: RecordMetadata) -> list[str]:
    """``values`` with each bare host prefixed by ``metadata``'s numbers (others as they are);
    ``InvalidRecord`` when a bare host needs a number ``metadata`` lacks."""
    done: list[str] = []
    for value in values:
        if is_bare(kind, value):
            missing = metadata.missing(kind)
            if missing:
                raise InvalidRecord(
                    f"The {kind} value {value.strip()!r} needs spec.metadata."
                    f"{', spec.metadata.'.join(missing)} on its DNSRecord.",
                    details={"field": "values", "missing": list(missing)},
                )
            done.append(f"{metadata.prefix(kind)} {value.strip()}")
        else:
            done.append(value)
    return done


@dataclass(frozen=True, slots=True)
class WantedRecord:
    """What one DNSRecord wants: its values as it states them (bare MX hosts and SRV targets),
    the metadata that completes them, and its own TTL (``spec.ttl``; ``None``: the DNSClass's
    ``spec.defaultTTL``, then the zone's)."""

    namespace: str
    name: str
    dns_class: str
    key: RecordKey
    values: tuple[str, ...]
    ttl: int | None = None
    metadata: RecordMetadata = RecordMetadata()

    @property
    def reference(self) -> str:
        """``DNSRecord mail/mx`` (namespace/name), for messages."""
        return f"DNSRecord {self.namespace}/{self.name}"

    def full_values(self) -> tuple[str, ...]:
        """The values the provider should hold, canonical (``10 mail.example.com``);
        ``InvalidRecord`` when the DNSRecord cannot be published (a bare MX without
        ``spec.metadata.priority``, a value that is not valid)."""
        return canonical_values(self.key.type, complete(self.key.type, self.values, self.metadata))


def describe_all(records: Sequence[WantedRecord]) -> str:
    """``DNSRecord a/x and DNSRecord b/y``, for messages."""
    names = [record.reference for record in records]
    return ", ".join(names[:-1]) + f" and {names[-1]}" if len(names) > 1 else "".join(names)
