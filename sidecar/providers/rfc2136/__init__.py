"""The RFC 2136 provider: dynamic DNS UPDATE with TSIG (BIND, Knot, PowerDNS, Technitium...)."""
