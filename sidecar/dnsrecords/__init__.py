"""The operator's DNSRecords as the sidecar sees them (SPEC section 9): a read-only view of the
DNSRecords of the DNSClasses it serves, kept by one list + watch, and the metadata (MX priority,
SRV priority, weight and port) that the operator never sends."""

from sidecar.dnsrecords.view import DnsRecordView
from sidecar.dnsrecords.wanted import RecordMetadata, WantedRecord

__all__ = ["DnsRecordView", "RecordMetadata", "WantedRecord"]
