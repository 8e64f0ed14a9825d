"""The RFC 2136 transport on its own: addresses, keys, and every failure classified in one place
(a silent server, a server answering SERVFAIL or NOTZONE, a name that does not resolve), plus
the companion names and the account kept or rebuilt across reloads."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import pytest

from sidecar.config import loader
from sidecar.config.runtime import build
from sidecar.errors import ProviderError, ProviderUnavailable
from sidecar.providers.rfc2136.address import split_server
from sidecar.providers.rfc2136.companion import companion_name
from sidecar.providers.rfc2136.provider import Rfc2136Provider
from sidecar.providers.rfc2136.server import DnsServer, TsigKey
from tests.bind_server import KEY_NAME, BindServer
from tests.builders import local
from tests.conftest import make_settings

EXAMPLE = dns.name.from_text("example.test")


@asynccontextmanager
async def fake_dns(answer: Callable[[dns.message.Message], bytes | None]) -> AsyncIterator[int]:
    """A TCP DNS server on loopback answering each message with ``answer`` (None: silence)."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            (size,) = struct.unpack("!H", await reader.readexactly(2))
            reply = answer(dns.message.from_wire(await reader.readexactly(size)))
            if reply is None:
                await reader.read()  # hold the connection open, answering nothing
            else:
                writer.write(struct.pack("!H", len(reply)) + reply)
                await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()


def _rcode(rcode: dns.rcode.Rcode) -> Callable[[dns.message.Message], bytes]:
    def answer(query: dns.message.Message) -> bytes:
        reply = dns.message.make_response(query)
        reply.set_rcode(rcode)
        return reply.to_wire()

    return answer


def test_server_addresses() -> None:
    """host, host:port, [v6]:port and a bare IPv6 address; port 53 by default."""
    assert [
        split_server(s) for s in ("dns.lan", "192.0.2.53:5353", "[2001:db8::1]:54", "2001:db8::1")
    ] == [("dns.lan", 53), ("192.0.2.53", 5353), ("2001:db8::1", 54), ("2001:db8::1", 53)]


def test_companion_names() -> None:
    """A sibling of the name, the apex's child, and a digest for a label too long to prefix."""
    long = "x" * 60
    assert [
        companion_name("www.example.test", "A", "example.test"),
        companion_name("example.test", "MX", "example.test"),
        companion_name(f"{long}.example.test", "AAAA", "example.test"),
    ] == [
        "_dns-sidecar-a-www.example.test",
        "_dns-sidecar-mx.example.test",
        "_dns-sidecar-aaaa--42f2d97335669f86.example.test",
    ]


def test_a_secret_that_is_not_base64_says_so() -> None:
    """503 naming the account and where the secret comes from (the key file's secret part)."""
    with pytest.raises(ProviderUnavailable) as failed:
        TsigKey(KEY_NAME, "hmac-sha256", "not base64!").keyring("home")
    assert failed.value.message.startswith("Account 'home': tsig.secret is not base64")


async def test_a_silent_server_is_a_timeout() -> None:
    """A server that accepts and never answers: 503 after the timeout, naming it."""
    async with fake_dns(lambda _: None) as port:
        server = DnsServer("home", f"127.0.0.1:{port}", lambda: None, timeout=0.2)
        with pytest.raises(ProviderUnavailable) as failed:
            await server.query(EXAMPLE, dns.rdatatype.SOA)
    assert failed.value.message == (
        f"Account 'home': DNS server 127.0.0.1:{port} did not answer the query example.test. "
        "SOA within 0.2 s."
    )


@pytest.mark.parametrize(
    ("rcode", "hint"),
    [
        (dns.rcode.SERVFAIL, "the server could not process it: check its log"),
        (dns.rcode.NOTAUTH, "the server is not authoritative for the zone, or did not accept"),
        (dns.rcode.FORMERR, "check the server's log"),
    ],
)
async def test_server_rcodes_are_502_with_what_to_check(rcode: dns.rcode.Rcode, hint: str) -> None:
    """Each RCODE the server answers is named in a 502 with the hint that fits it."""
    async with fake_dns(_rcode(rcode)) as port:
        server = DnsServer("home", f"127.0.0.1:{port}", lambda: None, timeout=2)
        with pytest.raises(ProviderError) as failed:
            await server.query(EXAMPLE, dns.rdatatype.SOA)
    assert failed.value.details["rcode"] == dns.rcode.to_text(rcode)
    assert hint in failed.value.message


async def test_a_name_outside_the_zone_is_notzone(bind: BindServer) -> None:
    """An UPDATE of a name outside its zone: 502 NOTZONE, saying to check the zone entry."""
    key = TsigKey(KEY_NAME, "hmac-sha256", bind.secret)
    server = DnsServer("home", bind.address, lambda: key, timeout=2)
    message = server.new_update(EXAMPLE)
    message.add(dns.name.from_text("x.elsewhere.test"), 300, "A", "192.0.2.1")
    with pytest.raises(ProviderError) as failed:
        await server.update(message)
    assert failed.value.details["rcode"] == "NOTZONE"
    assert "check that the zone entry names the DNS zone" in failed.value.message


async def test_host_names_are_looked_up(bind: BindServer) -> None:
    """A server given by name is resolved (within the timeout); a name that does not resolve is
    503 saying to check `server`."""
    key = TsigKey(KEY_NAME, "hmac-sha256", bind.secret)
    by_name = DnsServer("home", f"localhost:{bind.port}", lambda: key, timeout=2)
    reply = await by_name.query(EXAMPLE, dns.rdatatype.SOA)
    assert reply.answer[0].rdtype == dns.rdatatype.SOA
    nowhere = DnsServer("home", "no-such-host.invalid", lambda: key, timeout=2)
    with pytest.raises(ProviderUnavailable) as failed:
        await nowhere.query(EXAMPLE, dns.rdatatype.SOA)
    assert failed.value.message.startswith(
        "Account 'home': cannot resolve the DNS server 'no-such-host.invalid'"
    )


async def test_a_transfer_from_a_silent_server_is_503() -> None:
    """An AXFR the server never answers fails as unavailable, not as a refusal."""
    async with fake_dns(lambda _: None) as port:
        server = DnsServer("home", f"127.0.0.1:{port}", lambda: None, timeout=0.2)
        with pytest.raises(ProviderUnavailable):
            await server.transfer(EXAMPLE)


def test_an_account_is_kept_across_reloads_until_its_zones_change() -> None:
    """The same entry and zones: the same provider; another zone routed to it: a new one, which
    asks the new zone for its health."""

    def table(*zones: str) -> str:
        routed = "".join(f"  - {{name: {z}, account: home}}\n" for z in zones)
        return (
            "version: 1\naccounts:\n  - {name: home, provider: rfc2136, server: 192.0.2.53}\n"
            f"zones:\n{routed}"
        )

    def runtime(text: str, previous: object = None) -> object:
        spec = loader.parse(text, "t.yaml")
        return build(
            spec,
            make_settings(),
            source="t.yaml",
            coordination=local(),
            previous=previous,  # type: ignore[arg-type]
        )

    first = runtime(table("a.test"))
    again = runtime(table("a.test"), first)
    more = runtime(table("a.test", "b.test"), again)
    providers = [r.accounts["home"].provider for r in (first, again, more)]  # type: ignore[attr-defined]
    assert providers[0] is providers[1]
    assert providers[2] is not providers[1]
    assert isinstance(providers[2], Rfc2136Provider)
    assert providers[2].zones == ("a.test", "b.test")
