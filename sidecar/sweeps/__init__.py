"""Sweeps (SPEC section 9): what the DNSRecords want against what each zone holds.

``plan`` compares one zone's listing with the DNSRecords (a pure function: orphans, drift,
conflicts); ``sweeper`` runs it over every zone routed for a ``{dnsClass}`` client, remembers
since when each finding stands, prunes and repairs as each zone allows, and reports; ``audit``
is one sweep from the command line that changes nothing.
"""
