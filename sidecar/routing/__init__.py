"""Which zone and account serve a name: the routing table."""

from sidecar.routing.table import Account, Route, RoutingTable

__all__ = ["Account", "Route", "RoutingTable"]
