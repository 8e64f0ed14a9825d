"""One DNS server, spoken to with TSIG: queries (UDP, TCP when truncated), UPDATE messages
(TCP) and zone transfers (TCP).

Every call has a deadline (the provider timeout), the TSIG key is read from its credential at
each call (a rotated Secret applies to the next message), and every failure becomes one of the
sidecar's errors here, in one place: no answer is 503 ``PROVIDER_UNAVAILABLE``; a refusal, a
TSIG failure or a server error is 502 ``PROVIDER_ERROR`` naming the RCODE and what to check; a
failed prerequisite is 409 ``RECORD_CONFLICT`` (the caller says which).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass

import dns.asyncquery
import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsig
import dns.update
import dns.xfr
import dns.zone

from sidecar.errors import ProviderError, ProviderUnavailable, SidecarError
from sidecar.providers.rfc2136.address import split_server

ALGORITHMS = ("hmac-sha224", "hmac-sha256", "hmac-sha384", "hmac-sha512")
UDP_PAYLOAD = 1232  # EDNS buffer size safe from fragmentation (DNS flag day 2020)
UDP_WAIT = 1.0  # seconds for a UDP answer before the query is asked again over TCP

# The prerequisite failures of RFC 2136 section 3.2: the name or set is not as the UPDATE said.
PREREQUISITE_FAILED = frozenset(
    {dns.rcode.YXDOMAIN, dns.rcode.YXRRSET, dns.rcode.NXDOMAIN, dns.rcode.NXRRSET}
)


@dataclass(frozen=True, slots=True)
class TsigKey:
    """A TSIG key as the server knows it: name, algorithm, and the base64 secret."""

    name: str
    algorithm: str
    secret: str

    def keyring(self, account: str) -> dict[dns.name.Name, dns.tsig.Key]:
        try:
            secret = base64.b64decode(self.secret, validate=True)
        except (binascii.Error, ValueError) as err:
            raise ProviderUnavailable(
                f"Account {account!r}: tsig.secret is not base64 (give it as in the key file "
                'or `tsig-keygen` output, the secret "..." part).',
                details={"account": account},
            ) from err
        key = dns.tsig.Key(self.name, secret, self.algorithm)
        return {key.name: key}


class DnsServer:
    """The zone's primary. ``key`` gives the TSIG key now (``None``: unsigned messages)."""

    def __init__(
        self,
        account: str,
        server: str,
        key: Callable[[], TsigKey | None],
        *,
        timeout: float,
    ) -> None:
        self.account = account
        self.server = server
        self.host, self.port = split_server(server)
        self.timeout = timeout
        self._key = key

    async def query(
        self, name: dns.name.Name, rdtype: dns.rdatatype.RdataType
    ) -> dns.message.Message:
        """One question, answered by the primary (authoritative data, not a cache): over UDP
        (a third of the time of a TCP exchange on loopback), TCP when that does not do."""
        message = dns.message.make_query(name, rdtype, use_edns=0, payload=UDP_PAYLOAD)
        return await self._send(message, f"query {name} {dns.rdatatype.to_text(rdtype)}")

    async def update(self, message: dns.update.UpdateMessage) -> int:
        """Send one UPDATE; its RCODE when a prerequisite failed (else NOERROR)."""
        reply = await self._send(message, f"update of zone {message.zone[0].name}")
        return reply.rcode()

    def new_update(self, zone: dns.name.Name) -> dns.update.UpdateMessage:
        """An UPDATE message for ``zone``, signed with the key in force now."""
        key = self._key()
        if key is None:
            return dns.update.UpdateMessage(zone)
        keyring = key.keyring(self.account)
        return dns.update.UpdateMessage(zone, keyring=keyring, keyalgorithm=key.algorithm)

    async def transfer(self, zone: dns.name.Name) -> dns.zone.Zone:
        """The whole zone by AXFR (sweeps list it this way)."""
        copy = dns.zone.Zone(zone, relativize=False)
        key = self._key()
        keyring = key.keyring(self.account) if key is not None else None
        keyname = next(iter(keyring)) if keyring else None
        query, _ = dns.xfr.make_query(
            copy,
            keyring=keyring,
            keyname=keyname,
            keyalgorithm=key.algorithm if key else dns.tsig.default_algorithm,
        )
        what = f"zone transfer (AXFR) of {zone}"
        address = await self._address()
        try:  # each read has the timeout; the whole transfer three times it
            async with asyncio.timeout(self.timeout * 3):
                await dns.asyncquery.inbound_xfr(
                    address, copy, query, port=self.port, timeout=self.timeout
                )
        except dns.xfr.TransferError as err:
            raise self._refused(err.rcode, what, transfer=True) from err
        except Exception as err:  # classified in one place: _failure
            raise self._failure(err, what) from err
        return copy

    async def _send(self, message: dns.message.Message, what: str) -> dns.message.Message:
        if not isinstance(message, dns.update.UpdateMessage):
            key = self._key()
            if key is not None:
                message.use_tsig(key.keyring(self.account), algorithm=key.algorithm)
        address = await self._address()
        try:
            if isinstance(message, dns.update.UpdateMessage):  # an UPDATE always over TCP
                reply = await dns.asyncquery.tcp(
                    message, address, timeout=self.timeout, port=self.port
                )
            else:
                reply = await self._query(message, address)
        except Exception as err:  # classified in one place: _failure
            raise self._failure(err, what) from err
        rcode = reply.rcode()
        if rcode in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN) and message.opcode() == 0:
            return reply  # a query: no such name is an answer
        if rcode == dns.rcode.NOERROR or rcode in PREREQUISITE_FAILED:
            return reply
        raise self._refused(rcode, what)

    async def _query(self, message: dns.message.Message, address: str) -> dns.message.Message:
        """UDP first (TCP when the answer is truncated); no UDP answer within ``UDP_WAIT``
        (a lost datagram, or a server that is down: UDP hears no refusal) asks again over TCP,
        which hears one at once."""
        try:
            reply, _ = await dns.asyncquery.udp_with_fallback(
                message, address, timeout=min(self.timeout, UDP_WAIT), port=self.port
            )
        except (dns.exception.Timeout, OSError):
            return await dns.asyncquery.tcp(message, address, timeout=self.timeout, port=self.port)
        return reply

    async def _address(self) -> str:
        """The server's address: a literal as it is, a host name looked up (with the deadline)."""
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            pass
        else:
            return self.host
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.timeout):
                found = await loop.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
        except (OSError, TimeoutError) as err:
            raise ProviderUnavailable(
                f"Account {self.account!r}: cannot resolve the DNS server {self.host!r} "
                f"({err or 'timed out'}); check `server`.",
                details={"account": self.account, "server": self.server},
            ) from err
        return str(found[0][4][0])

    def _failure(self, err: Exception, what: str) -> SidecarError:
        """An exception from dnspython or the network, as the sidecar's error."""
        where = f"Account {self.account!r}: DNS server {self.server}"
        details = {"account": self.account, "server": self.server}
        if isinstance(err, SidecarError):
            return err
        if isinstance(
            err,
            dns.tsig.PeerError
            | dns.tsig.BadSignature
            | dns.tsig.BadKey
            | dns.tsig.BadTime
            | dns.tsig.BadAlgorithm
            | dns.message.UnknownTSIGKey,
        ):
            return ProviderError(
                f"{where} refused the TSIG signature of the {what} "
                f"({_tsig_reason(err)}): check the key name, algorithm and secret against the "
                "server's key (and the clocks, for a bad time).",
                details={**details, "tsig": _tsig_reason(err)},
            )
        if isinstance(err, TimeoutError | dns.exception.Timeout):
            return ProviderUnavailable(
                f"{where} did not answer the {what} within {self.timeout:g} s.", details=details
            )
        if isinstance(err, OSError | EOFError | ConnectionError):
            why = err.strerror if isinstance(err, OSError) and err.strerror else type(err).__name__
            return ProviderUnavailable(
                f"{where} is unreachable for the {what} ({why}): check that it runs, and "
                "`server` (host and port).",
                details=details,
            )
        return ProviderError(
            f"{where} failed the {what}: {err or type(err).__name__}.", details=details
        )

    def _refused(self, rcode: int, what: str, *, transfer: bool = False) -> ProviderError:
        name = dns.rcode.to_text(rcode)  # type: ignore[arg-type]
        where = f"Account {self.account!r}: DNS server {self.server}"
        if transfer:
            hint = "allow-transfer (or the server's ACL) must let this key transfer the zone"
        elif rcode == dns.rcode.REFUSED:
            hint = (
                "check that the zone entry names a zone this server is primary for, and that "
                "its update-policy (allow-update, ACL) grants this key; or the server's own "
                "checks refused the data (its log says why, e.g. an in-zone MX target without "
                "an address record)"
            )
        elif rcode == dns.rcode.NOTAUTH:
            hint = (
                "the server is not authoritative for the zone, or did not accept the key: check "
                "the zone entry and the key name, algorithm and secret"
            )
        elif rcode == dns.rcode.NOTZONE:
            hint = "the name is outside the zone: check that the zone entry names the DNS zone"
        elif rcode == dns.rcode.SERVFAIL:
            hint = "the server could not process it: check its log (zone not loaded, journal)"
        else:
            hint = "check the server's log"
        return ProviderError(
            f"{where} answered {name} to the {what}: {hint}.",
            details={"account": self.account, "server": self.server, "rcode": name},
        )


_TSIG_REASONS: dict[type[Exception], str] = {
    dns.tsig.PeerBadKey: "BADKEY: the server does not know this key name and algorithm",
    dns.tsig.PeerBadSignature: "BADSIG: the secret does not match",
    dns.tsig.PeerBadTime: "BADTIME: the clocks differ too much",
}


def _tsig_reason(err: Exception) -> str:
    return _TSIG_REASONS.get(type(err), type(err).__name__)
