"""HTTPS on the protocol port: the TLS terms, the certificate pair in force, its reload, its facts.

``DNS_SIDECAR_TLS_CERT_FILE`` and ``DNS_SIDECAR_TLS_KEY_FILE`` (PEM; the chain may follow the
certificate) are usually a cert-manager Certificate's Secret mounted as a directory, renewed by
the kubelet's ``..data`` swap. :class:`LiveCertificate` holds the pair in force and follows the
files with the package's one watcher (``config.watching``): a changed pair is loaded into a new
``SSLContext`` in full (certificate, chain, key, and that they match), and only then put in
force. The listener keeps the one context it was started with: its ``sni_callback`` (OpenSSL
calls it for every ClientHello, with or without a server name) moves each new handshake onto
the context in force, so the next handshake uses the new pair, and a connection already open
keeps the context it was made with. A pair that does not load leaves the old one serving; the
error is logged, counted and shown on ``/status``.

The terms: TLS 1.2 and 1.3 only; for TLS 1.2 only ECDHE key exchange with AES-GCM or
ChaCha20-Poly1305 (TLS 1.3's suites are all of that kind); no compression, no renegotiation.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from sidecar.clock import Clock
from sidecar.config import watching
from sidecar.settings import TableSettings, TlsSettings
from sidecar.tasks import Tasks

if TYPE_CHECKING:  # cryptography (several MiB) is imported only when HTTPS is on
    from cryptography import x509

log = logging.getLogger(__name__)

# TLS 1.2: forward secrecy and AEAD only (Mozilla's "intermediate" list without DHE)
CIPHERS_TLS12 = "ECDHE+AESGCM:ECDHE+CHACHA20"


class TlsError(ValueError):
    """The certificate pair cannot be served; the message names the file and what to do."""


def server_context() -> ssl.SSLContext:
    """A server context with the protocol port's terms and no certificate yet."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(CIPHERS_TLS12)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    context.set_alpn_protocols(["http/1.1"])
    return context


@dataclass(frozen=True)
class CertificateFacts:
    """What ``/status`` shows of the serving certificate (the first one in the file)."""

    subject: str
    issuer: str
    sans: tuple[str, ...]  # "DNS:name" and "IP:address", as openssl prints them
    not_before: datetime
    not_after: datetime
    serial: str
    sha256: str  # fingerprint of the DER certificate, hex

    @classmethod
    def parse(cls, pem: bytes, path: Path) -> CertificateFacts:
        from cryptography import x509  # noqa: PLC0415 - only with HTTPS on: see the imports
        from cryptography.hazmat.primitives import hashes  # noqa: PLC0415 - the same

        try:
            certificate = x509.load_pem_x509_certificates(pem)[0]
        except ValueError as err:
            msg = f"{path} holds no PEM certificate ({err}); give the certificate file (tls.crt)"
            raise TlsError(msg) from err
        try:
            extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
            sans = tuple(_san(name) for name in extension.value)
        except x509.ExtensionNotFound:
            sans = ()
        return cls(
            subject=certificate.subject.rfc4514_string(),
            issuer=certificate.issuer.rfc4514_string(),
            sans=sans,
            not_before=certificate.not_valid_before_utc,
            not_after=certificate.not_valid_after_utc,
            serial=f"{certificate.serial_number:x}",
            sha256=certificate.fingerprint(hashes.SHA256()).hex(),
        )

    def as_status(self, now: float) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "issuer": self.issuer,
            "sans": list(self.sans),
            "notBefore": _iso(self.not_before),
            "notAfter": _iso(self.not_after),
            "expiresInSeconds": int(self.not_after.timestamp() - now),
            "serial": self.serial,
            "sha256": self.sha256,
        }


def _san(name: x509.GeneralName) -> str:
    from cryptography import x509  # noqa: PLC0415 - only with HTTPS on: see the imports

    if isinstance(name, x509.DNSName):
        return f"DNS:{name.value}"
    if isinstance(name, x509.IPAddress):
        return f"IP:{name.value}"
    if isinstance(name, x509.UniformResourceIdentifier):
        return f"URI:{name.value}"
    if isinstance(name, x509.RFC822Name):
        return f"email:{name.value}"
    if isinstance(name, x509.RegisteredID):
        return f"RID:{name.value.dotted_string}"
    return str(name.value)  # a directory name or another name, as cryptography writes it


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Pair:
    """A certificate pair loaded and checked: its context, its facts, the digest of its files."""

    context: ssl.SSLContext
    facts: CertificateFacts
    digest: str


def _read(path: Path, what: str, variable: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as err:
        msg = f"cannot read the TLS {what} {path} ({err.strerror or err}); check {variable}"
        raise TlsError(msg) from err


def _digest(cert: bytes, key: bytes) -> str:
    return hashlib.sha256(hashlib.sha256(cert).digest() + hashlib.sha256(key).digest()).hexdigest()


def _encrypted_key() -> str:
    msg = "the key is encrypted: give an unencrypted PEM key (as cert-manager writes tls.key)"
    raise TlsError(msg)


def load_pair(cert_file: Path, key_file: Path) -> Pair:
    """Read, check and load the pair; :class:`TlsError` says what is wrong with it."""
    cert = _read(cert_file, "certificate", "DNS_SIDECAR_TLS_CERT_FILE")
    key = _read(key_file, "key", "DNS_SIDECAR_TLS_KEY_FILE")
    facts = CertificateFacts.parse(cert, cert_file)
    context = server_context()
    try:
        context.load_cert_chain(cert_file, key_file, password=_encrypted_key)
    except TlsError as err:
        raise TlsError(f"{key_file}: {err}") from err
    except ssl.SSLError as err:
        raise TlsError(_load_error(err, cert_file, key_file)) from err
    except OSError as err:  # gone between reading and loading (a swap): the next event retries
        raise TlsError(f"cannot load the TLS pair: {err}") from err
    if _read(cert_file, "certificate", "DNS_SIDECAR_TLS_CERT_FILE") != cert:
        msg = f"{cert_file} changed while it was loaded; it is read again at the next change"
        raise TlsError(msg)
    return Pair(context, facts, _digest(cert, key))


def _load_error(err: ssl.SSLError, cert_file: Path, key_file: Path) -> str:
    reason = err.reason or str(err)
    if reason == "KEY_VALUES_MISMATCH":
        return (
            f"the key {key_file} does not belong to the certificate {cert_file}; "
            "give the key the certificate was issued for"
        )
    return (
        f"cannot load the TLS pair {cert_file} and {key_file} ({reason}): both must be PEM, "
        "the certificate first in its file, the key unencrypted"
    )


class TlsMetrics:
    """The serving certificate's expiry (for an alert), reloads, and failed handshakes."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.expiry = Gauge(
            "dns_sidecar_tls_certificate_expiry_seconds",
            "When the protocol port's serving certificate expires (unix time); alert on "
            "expiry - time() below what renewal needs.",
            registry=registry,
        )
        self.reloads = Counter(
            "dns_sidecar_tls_reloads",
            "Loads of a changed TLS certificate pair, by result (a failure keeps the old pair).",
            ["result"],
            registry=registry,
        )
        self.handshake_failures = Counter(
            "dns_sidecar_tls_handshake_failures",
            "TLS handshakes on the protocol port that failed, by reason: plain_http, timeout, "
            "tls (no common version or cipher, a client that rejects the certificate), closed.",
            ["reason"],
            registry=registry,
        )


class LiveCertificate:
    """The certificate pair in force on the protocol port, and the context the listener uses."""

    def __init__(
        self, files: TlsSettings, table: TableSettings, registry: CollectorRegistry, clock: Clock
    ) -> None:
        assert files.cert_file is not None
        assert files.key_file is not None
        self.cert_file = files.cert_file
        self.key_file = files.key_file
        self.debounce_ms = table.reload_debounce_ms
        self.interval = table.reload_interval
        self.clock = clock
        self.metrics = TlsMetrics(registry)
        self.pair = load_pair(self.cert_file, self.key_file)  # TlsError: the service must not start
        self.loaded_at = clock.time()
        self.last_error: str | None = None
        self.failed_reloads = 0
        self.metrics.expiry.set(self.pair.facts.not_after.timestamp())
        self.context = self.pair.context  # the listener's, for good: it moves handshakes on
        self.context.sni_callback = self._select
        self.tasks = Tasks("tls")
        self._lock = asyncio.Lock()

    def _select(self, connection: ssl.SSLObject, server_name: str | None, _: Any) -> None:
        """Each handshake on the pair in force (called for every ClientHello)."""
        if connection.context is not self.pair.context:
            connection.context = self.pair.context

    async def reload_once(self) -> bool:
        """Load the files again; put the pair in force if it changed and is good."""
        async with self._lock:
            try:
                pair = load_pair(self.cert_file, self.key_file)
            except TlsError as err:
                return self._rejected(str(err))
            if pair.digest == self.pair.digest:  # unchanged, or back to the pair in force
                if self.last_error is not None:
                    log.info("TLS files are good again: the pair in force is on disk")
                    self.last_error = None
                return False
            self.pair = pair
            self.loaded_at = self.clock.time()
            self.last_error = None
        self.metrics.expiry.set(pair.facts.not_after.timestamp())
        self.metrics.reloads.labels("success").inc()
        log.info(
            "TLS certificate reloaded",
            extra={
                "fields": {
                    "subject": pair.facts.subject,
                    "not_after": _iso(pair.facts.not_after),
                    "serial": pair.facts.serial,
                }
            },
        )
        return True

    def _rejected(self, error: str) -> bool:
        if error != self.last_error:
            log.error("TLS certificate not reloaded, the old one keeps serving: %s", error)
        self.last_error = error
        self.failed_reloads += 1
        self.metrics.reloads.labels("failure").inc()
        return False

    def status(self) -> dict[str, Any]:
        return {
            "enabled": True,
            "certFile": str(self.cert_file),
            "keyFile": str(self.key_file),
            "certificate": self.pair.facts.as_status(self.clock.time()),
            "loadedAt": _iso(datetime.fromtimestamp(self.loaded_at, UTC)),
            "lastReloadError": self.last_error,
            "failedReloads": self.failed_reloads,
        }

    async def watch_forever(self, stop: asyncio.Event) -> None:
        paths = [self.cert_file, self.key_file]
        await watching.watch_files(paths, self.reload_once, stop, debounce_ms=self.debounce_ms)

    async def recheck_forever(self, stop: asyncio.Event) -> None:
        await watching.recheck_files(self.interval, self.reload_once, stop)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Follow the files in supervised loops while the block runs."""
        stop = asyncio.Event()
        for loop in (self.watch_forever, self.recheck_forever):
            self.tasks.loop(f"tls_{loop.__name__}", functools.partial(loop, stop))
        try:
            yield
        finally:
            stop.set()
            await self.tasks.aclose()
