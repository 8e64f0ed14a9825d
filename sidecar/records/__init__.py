"""DNS records as the sidecar understands them: names, values, record sets."""

from sidecar.records.model import RecordKey, RecordSet
from sidecar.records.names import RecordName

__all__ = ["RecordKey", "RecordName", "RecordSet"]
