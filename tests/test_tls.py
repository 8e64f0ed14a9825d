"""HTTPS on the protocol port (SPEC section 11): a private CA made here, the real TLS stack,
clients that verify the chain, renewals by the kubelet's ``..data`` swap."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import itertools
import json
import logging
import ssl
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import ValidationError

from sidecar.app import METRICS, TLS, StartupError, create_app
from sidecar.auth import signing
from sidecar.auth.signing import Algorithm
from sidecar.protocol.tls import CertificateFacts, TlsError, load_pair
from sidecar.settings import Settings, TlsSettings, describe_settings_error
from tests.conftest import (
    SECRET,
    Caller,
    Sidecar,
    StartManagement,
    StartSidecar,
    eventually,
    make_settings,
)
from tests.service import running
from tests.test_cli import run

_stamps = itertools.count(1)
Key = ec.EllipticCurvePrivateKey


def _pem(key: Key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


class Pki:
    """A private CA and the server certificates it issues (what cert-manager's CA Issuer does)."""

    def __init__(self, name: str = "dns-sidecar test CA") -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )

    @property
    def ca_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(
        self,
        common_name: str = "dns-sidecar",
        *,
        days: int = 90,
        key: Key | None = None,
        names: tuple[str, ...] = (),
    ) -> tuple[x509.Certificate, bytes, bytes]:
        """A server certificate for localhost and 127.0.0.1, or for ``names`` only when given:
        (certificate, cert PEM, key PEM)."""
        key = key or ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        sans: list[x509.GeneralName] = [x509.DNSName(name) for name in names] or [
            x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        ]
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        return cert, cert.public_bytes(serialization.Encoding.PEM) + self.ca_pem, _pem(key)

    def client_context(self) -> ssl.SSLContext:
        """A client that trusts this CA only and verifies the name (as Go's transport does)."""
        return ssl.create_default_context(cadata=self.ca_pem.decode())


class SecretDir:
    """A directory laid out like a mounted Secret (``tls.crt``, ``tls.key``, ``ca.crt``), updated
    the way the kubelet does it: a new timestamped directory, ``..data`` renamed over."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir()
        for name in ("tls.crt", "tls.key", "ca.crt"):
            (root / name).symlink_to(f"..data/{name}")

    @property
    def cert(self) -> Path:
        return self.root / "tls.crt"

    @property
    def key(self) -> Path:
        return self.root / "tls.key"

    def publish(self, cert: bytes, key: bytes, ca: bytes = b"") -> None:
        version = self.root / f"..2026_12_06_{next(_stamps):06d}"
        version.mkdir()
        (version / "tls.crt").write_bytes(cert)
        (version / "tls.key").write_bytes(key)
        (version / "ca.crt").write_bytes(ca)
        tmp = self.root / "..data_tmp"
        tmp.symlink_to(version.name)
        tmp.replace(self.root / "..data")  # the atomic swap


@dataclass
class Https:
    """A sidecar serving HTTPS, its CA, its Secret directory and the first certificate."""

    sidecar: Sidecar
    pki: Pki
    secret: SecretDir
    first: x509.Certificate
    caller: Caller  # signs like the operator, over HTTPS, verifying the chain

    def metric(self, name: str, **labels: str) -> float:
        return self.sidecar.app[METRICS].registry.get_sample_value(name, labels) or 0.0

    async def open(self, ssl_context: ssl.SSLContext | None = None) -> Connection:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1",
            self.sidecar.port,
            ssl=ssl_context or self.pki.client_context(),
            server_hostname="localhost",
        )
        return Connection(reader, writer)

    async def serial_served(self) -> int:
        """The serial number of the certificate a new connection is shown."""
        connection = await self.open()
        try:
            return connection.serial()
        finally:
            await connection.close()


@dataclass
class Connection:
    """One kept-alive HTTPS connection, spoken to by hand."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    def serial(self) -> int:
        der = self.writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        return x509.load_der_x509_certificate(der).serial_number

    async def signed_get(self, path: str = "/records/A/example.com/www") -> int:
        headers = signing.sign(SECRET, Algorithm.SHA256, "GET", path, b"")
        lines = [f"GET {path} HTTP/1.1", "Host: localhost"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 10)
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        await asyncio.wait_for(self.reader.readexactly(length), 10)
        return int(head.split(b" ", 2)[1])

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):  # the server may close first
            await self.writer.wait_closed()


def tls_settings(secret: SecretDir, **server: Any) -> Settings:
    settings = make_settings(
        hmac_secret=SECRET.decode(), server=server, table={"reload_debounce_ms": 20}
    )
    return settings.model_copy(
        update={"tls": TlsSettings(cert_file=secret.cert, key_file=secret.key)}
    )


StartHttps = Callable[..., Any]


@pytest.fixture
async def start_https(start_sidecar: StartSidecar, tmp_path: Path) -> Callable[..., Any]:
    sessions: list[aiohttp.ClientSession] = []

    async def start(**server: Any) -> Https:
        pki = Pki()
        secret = SecretDir(tmp_path / "tls")
        first, cert, key = pki.issue()
        secret.publish(cert, key, pki.ca_pem)
        sidecar = await start_sidecar(tls_settings(secret, **server))
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=pki.client_context()))
        sessions.append(session)
        caller = Caller(session, f"https://localhost:{sidecar.port}", SECRET)
        return Https(sidecar, pki, secret, first, caller)

    yield start
    for session in sessions:
        await session.close()


async def test_every_protocol_operation_over_https(start_https: StartHttps) -> None:
    """Health, upsert, get and delete, signed, through a client that verifies the chain."""
    https = await start_https()
    caller = https.caller
    health = await caller.call("GET", "/health")
    assert (health.status, health.body["status"]) == (200, "healthy")
    created = await caller.upsert("A", "example.com", "www", ["192.0.2.1"], ttl=600)
    assert (created.status, created.body["record"]) == (
        200,
        {
            "type": "A",
            "domain": "example.com",
            "subdomain": "www",
            "fqdn": "www.example.com",
            "values": ["192.0.2.1"],
            "ttl": 600,
        },
    )
    got = await caller.call("GET", "/records/A/example.com/www")
    assert (got.status, got.body["record"]["values"]) == (200, ["192.0.2.1"])
    deleted = await caller.call("DELETE", "/records/A/example.com/www")
    assert (deleted.status, deleted.body["success"]) == (200, True)
    gone = await caller.call("GET", "/records/A/example.com/www")
    assert (gone.status, gone.code) == (404, "RECORD_NOT_FOUND")
    unsigned = await caller.call("GET", "/health", sign=False)
    assert (unsigned.status, unsigned.code) == (401, "AUTH_FAILED")  # HTTPS is no signature


async def test_a_client_without_the_ca_cannot_verify_the_server(start_https: StartHttps) -> None:
    """The system roots do not know the private CA: verification fails, nothing is sent."""
    https = await start_https()
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectorCertificateError) as failed:
            await session.get(f"https://localhost:{https.sidecar.port}/health")
    # the chain ends at the private CA, which nothing on this machine trusts
    assert failed.value.certificate_error.verify_message == (
        "self-signed certificate in certificate chain"
    )
    served = await https.caller.call("GET", "/health")
    assert served.status == 200


async def test_only_tls_1_2_and_1_3_with_modern_ciphers(start_https: StartHttps) -> None:
    """TLS 1.1, a TLS 1.2 cipher without forward secrecy and ECDHE with CBC are refused; 1.2
    and 1.3 work."""
    https = await start_https()
    legacy = https.pki.client_context()
    with warnings.catch_warnings():  # deprecated: the point of the test
        warnings.simplefilter("ignore", DeprecationWarning)
        legacy.minimum_version = ssl.TLSVersion.TLSv1
        legacy.maximum_version = ssl.TLSVersion.TLSv1_1
    legacy.set_ciphers("ALL:@SECLEVEL=0")
    with pytest.raises((ssl.SSLError, ConnectionError)):
        await https.open(legacy)
    static_rsa = https.pki.client_context()
    static_rsa.maximum_version = ssl.TLSVersion.TLSv1_2
    static_rsa.set_ciphers("AES128-SHA:AES256-GCM-SHA384")  # no ECDHE
    with pytest.raises((ssl.SSLError, ConnectionError)):
        await https.open(static_rsa)
    cbc = https.pki.client_context()
    cbc.maximum_version = ssl.TLSVersion.TLSv1_2
    cbc.set_ciphers("ECDHE+AES+SHA1:ECDHE+AES+SHA256:ECDHE+AES+SHA384:!AESGCM")  # CBC only
    with pytest.raises((ssl.SSLError, ConnectionError)):
        await https.open(cbc)
    versions = []
    for highest in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        context = https.pki.client_context()
        context.maximum_version = highest
        connection = await https.open(context)
        versions.append(connection.writer.get_extra_info("ssl_object").version())
        assert await connection.signed_get() == 404
        await connection.close()
    assert versions == ["TLSv1.2", "TLSv1.3"]
    # refused by the server (a client refusing to send would count as "closed")
    assert https.metric("dns_sidecar_tls_handshake_failures_total", reason="tls") == 3.0


async def test_status_and_metrics_show_the_serving_certificate(
    start_https: StartHttps, start_management: StartManagement
) -> None:
    """Subject, SANs and expiry on /status (over plain HTTP), the expiry as a unix-time gauge."""
    https = await start_https()
    management = await start_management(https.sidecar)
    assert management.base.startswith("http://")
    status = (await management.call("GET", "/status")).body["tls"]
    first = https.first
    assert status["certificate"] == {
        "subject": "CN=dns-sidecar",
        "issuer": "CN=dns-sidecar test CA",
        "sans": ["DNS:localhost", "IP:127.0.0.1"],
        "notBefore": first.not_valid_before_utc.isoformat().replace("+00:00", "Z"),
        "notAfter": first.not_valid_after_utc.isoformat().replace("+00:00", "Z"),
        "expiresInSeconds": pytest.approx(90 * 86400, abs=60),
        "serial": f"{first.serial_number:x}",
        "sha256": first.fingerprint(hashes.SHA256()).hex(),
    }
    assert (status["enabled"], status["lastReloadError"], status["failedReloads"]) == (
        True,
        None,
        0,
    )
    expiry = https.metric("dns_sidecar_tls_certificate_expiry_seconds")
    assert expiry == first.not_valid_after_utc.timestamp()
    assert (await management.call("GET", "/status")).body["loops"]["tls_watch_forever"]["running"]


async def test_a_renewal_is_served_while_an_open_connection_keeps_working(
    start_https: StartHttps,
) -> None:
    """After a ``..data`` swap the next handshake gets the new certificate within seconds; a
    connection opened before the swap still answers, on the certificate it was opened with."""
    https = await start_https()
    before = await https.open()
    assert await before.signed_get() == 404
    renewed, cert, key = https.pki.issue(days=30)
    swapped = time.monotonic()
    https.secret.publish(cert, key, https.pki.ca_pem)

    async def renewed_is_served() -> bool:
        return await https.serial_served() == renewed.serial_number

    await eventually(renewed_is_served, seconds=5)
    assert time.monotonic() - swapped < 5
    assert await before.signed_get() == 404  # the old connection, still open and answering
    assert before.serial() == https.first.serial_number
    await before.close()
    assert https.metric("dns_sidecar_tls_reloads_total", result="success") == 1.0
    expiry = https.metric("dns_sidecar_tls_certificate_expiry_seconds")
    assert expiry == renewed.not_valid_after_utc.timestamp()
    assert (await https.caller.call("GET", "/health")).status == 200


async def test_a_pair_that_does_not_load_leaves_the_old_one_serving(
    start_https: StartHttps,
    start_management: StartManagement,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A key that is not the certificate's, then a file that is not PEM: refused, logged,
    counted and on /status, the first certificate still served; a good pair then clears it."""
    https = await start_https()
    management = await start_management(https.sidecar)
    live = https.sidecar.app[TLS]
    _, cert, _ = https.pki.issue()
    _, _, other_key = https.pki.issue()
    with caplog.at_level(logging.ERROR, "sidecar.protocol.tls"):
        https.secret.publish(cert, other_key)
        await eventually(lambda: live.failed_reloads == 1, seconds=5)
    assert await https.serial_served() == https.first.serial_number
    status = (await management.call("GET", "/status")).body["tls"]
    assert status["lastReloadError"] == (
        f"the key {https.secret.key} does not belong to the certificate {https.secret.cert}; "
        "give the key the certificate was issued for"
    )
    assert status["certificate"]["serial"] == f"{https.first.serial_number:x}"
    assert [r.getMessage() for r in caplog.records] == [
        f"TLS certificate not reloaded, the old one keeps serving: {status['lastReloadError']}"
    ]

    https.secret.publish(b"-----BEGIN CERTIFICATE-----\nnot base64\n", other_key)
    await eventually(lambda: live.failed_reloads == 2, seconds=5)
    assert str(https.secret.cert) in str(live.last_error)
    assert await https.serial_served() == https.first.serial_number
    assert https.metric("dns_sidecar_tls_reloads_total", result="failure") == 2.0

    renewed, cert, key = https.pki.issue()
    https.secret.publish(cert, key)
    await eventually(lambda: live.last_error is None, seconds=5)
    assert await https.serial_served() == renewed.serial_number


async def test_plain_http_on_the_tls_port_is_closed_at_once_with_one_warning(
    start_https: StartHttps, caplog: pytest.LogCaptureFixture
) -> None:
    """Twenty plain HTTP requests: each connection closed without an answer, well within the
    read timeout; one warning line for all of them, every one counted."""
    https = await start_https(read_timeout=5)
    caplog.set_level(logging.WARNING)
    started = time.monotonic()
    for _ in range(20):
        reader, writer = await asyncio.open_connection("127.0.0.1", https.sidecar.port)
        writer.write(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), 2)
        assert not answer.startswith(b"HTTP/")
        writer.close()
    assert time.monotonic() - started < 5  # 20 connections in less than one read timeout
    assert https.metric("dns_sidecar_tls_handshake_failures_total", reason="plain_http") == 20.0
    warning = (
        "TLS handshake from 127.0.0.1 failed (plain_http): plain HTTP sent to the HTTPS port; "
        "call it with https://"
    )
    assert [r.getMessage() for r in caplog.records] == [warning]


async def test_a_handshake_that_never_finishes_is_a_slow_head(start_https: StartHttps) -> None:
    """A connection that sends nothing, and one that stops in its ClientHello, are closed after
    the read timeout and counted as slow heads."""
    https = await start_https(read_timeout=0.5)
    silent = await asyncio.open_connection("127.0.0.1", https.sidecar.port)
    partial = await asyncio.open_connection("127.0.0.1", https.sidecar.port)
    partial[1].write(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # a ClientHello's start
    started = time.monotonic()
    for reader, writer in (silent, partial):
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
    assert 0.4 < time.monotonic() - started < 3
    assert https.metric("dns_sidecar_connections_closed_total", reason="slow_head") == 2.0
    assert https.metric("dns_sidecar_tls_handshake_failures_total", reason="timeout") == 2.0
    assert (await https.caller.call("GET", "/health")).status == 200


async def test_a_head_that_never_comes_after_the_handshake_is_a_slow_head(
    start_https: StartHttps,
) -> None:
    """A connection that completes its handshake and sends no request is closed after the read
    timeout, as over plain HTTP (the TLS close does not wait for the client for long)."""
    https = await start_https(read_timeout=0.5)
    connection = await https.open()
    started = time.monotonic()
    assert await asyncio.wait_for(connection.reader.read(), 5) == b""
    assert 0.4 < time.monotonic() - started < 3
    await connection.close()
    assert https.metric("dns_sidecar_connections_closed_total", reason="slow_head") == 1.0
    assert https.metric("dns_sidecar_tls_handshake_failures_total", reason="timeout") == 0.0


async def test_the_connection_cap_counts_handshakes(start_https: StartHttps) -> None:
    """With the cap reached by connections stuck in their handshake, a real HTTPS request is
    still served: the oldest handshake is closed to make room."""
    https = await start_https(max_connections=3, read_timeout=30)
    stuck = [await asyncio.open_connection("127.0.0.1", https.sidecar.port) for _ in range(3)]
    reply = await https.caller.call("GET", "/health")
    assert reply.status == 200
    assert await asyncio.wait_for(stuck[0][0].read(), 10) == b""  # the oldest made room
    assert https.metric("dns_sidecar_connections_closed_total", reason="limit") == 1.0
    for _, writer in stuck:
        writer.close()


def test_one_of_the_two_settings_alone_is_refused(tmp_path: Path) -> None:
    """Either file alone is refused, naming the other; the command exits 2 saying so."""
    with pytest.raises(ValidationError) as only_cert:
        TlsSettings(cert_file=tmp_path / "tls.crt")
    said = (
        "invalid settings: DNS_SIDECAR_TLS_CERT_FILE is set but DNS_SIDECAR_TLS_KEY_FILE is "
        "not: set DNS_SIDECAR_TLS_KEY_FILE too to serve HTTPS (both PEM files), or unset "
        "DNS_SIDECAR_TLS_CERT_FILE to serve plain HTTP"
    )
    assert describe_settings_error(only_cert.value) == [said]
    with pytest.raises(ValidationError, match="DNS_SIDECAR_TLS_CERT_FILE is not"):
        TlsSettings(key_file=tmp_path / "tls.key")
    started = run("serve", "--port", "0", env={"DNS_SIDECAR_TLS_KEY_FILE": str(tmp_path)})
    assert started.returncode == 2
    assert "DNS_SIDECAR_TLS_KEY_FILE is set but DNS_SIDECAR_TLS_CERT_FILE is not" in started.stderr


def test_a_pair_that_does_not_load_at_start_refuses_to_start(tmp_path: Path) -> None:
    """No certificate to serve, nothing served: the error names the files and the remedy."""
    pki = Pki()
    secret = SecretDir(tmp_path / "tls")
    _, cert, _ = pki.issue()
    _, _, other_key = pki.issue()
    secret.publish(cert, other_key)
    with pytest.raises(StartupError) as refused:
        create_app(tls_settings(secret))
    assert str(refused.value) == (
        f"Cannot serve HTTPS: the key {secret.key} does not belong to the certificate "
        f"{secret.cert}; give the key the certificate was issued for."
    )
    missing = tls_settings(SecretDir(tmp_path / "empty"))
    with pytest.raises(StartupError, match=r"cannot read the TLS certificate .*tls\.crt"):
        create_app(missing)


def test_load_pair_says_what_is_wrong(tmp_path: Path) -> None:
    """An encrypted key, a key file that is not PEM, a certificate without SANs (facts still)."""
    pki = Pki()
    _, cert, key = pki.issue()
    (tmp_path / "tls.crt").write_bytes(cert)
    loaded = ec.generate_private_key(ec.SECP256R1())
    encrypted = loaded.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"password"),
    )
    (tmp_path / "tls.key").write_bytes(encrypted)
    with pytest.raises(TlsError, match="the key is encrypted: give an unencrypted PEM key"):
        load_pair(tmp_path / "tls.crt", tmp_path / "tls.key")
    (tmp_path / "tls.key").write_bytes(b"not a key")
    with pytest.raises(TlsError, match="both must be PEM"):
        load_pair(tmp_path / "tls.crt", tmp_path / "tls.key")
    (tmp_path / "tls.key").write_bytes(key)
    assert load_pair(tmp_path / "tls.crt", tmp_path / "tls.key").facts.sans == (
        "DNS:localhost",
        "IP:127.0.0.1",
    )
    facts = CertificateFacts.parse(pki.ca_pem, tmp_path / "ca.crt")
    assert (facts.subject, facts.sans) == ("CN=dns-sidecar test CA", ())
    with pytest.raises(TlsError, match="holds no PEM certificate"):
        CertificateFacts.parse(b"", tmp_path / "tls.crt")


def test_the_request_command_verifies_with_cacert(tmp_path: Path) -> None:
    """`dns-sidecar request --cacert` reaches the HTTPS port; without it, it says what to do."""
    pki = Pki()
    secret = SecretDir(tmp_path / "tls")
    _, cert, key = pki.issue()
    secret.publish(cert, key, pki.ca_pem)
    (tmp_path / "ca.crt").write_bytes(pki.ca_pem)
    env = {
        "DNS_SIDECAR_TLS_CERT_FILE": str(secret.cert),
        "DNS_SIDECAR_TLS_KEY_FILE": str(secret.key),
    }
    with running(env=env) as service:
        url = f"https://localhost:{service.port}"
        verified = run(
            "request", "GET", "/health", "--url", url, "--cacert", str(tmp_path / "ca.crt")
        )
        assert (verified.returncode, verified.stdout.splitlines()[0]) == (0, "HTTP 200")
        assert json.loads(verified.stdout.split("\n", 1)[1])["status"] == "healthy"
        unverified = run("request", "GET", "/health", "--url", url)
        assert unverified.returncode == 1
        assert "pass --cacert" in unverified.stderr
        plain = run("request", "GET", "/health", "--url", f"http://127.0.0.1:{service.port}")
        assert plain.returncode == 1
        assert "https://" in plain.stderr
    refused = run("request", "GET", "/health", "--cacert", str(tmp_path / "absent.crt"))
    assert refused.returncode == 2
    assert "--cacert" in refused.stderr


def test_the_request_command_verifies_for_server_name(tmp_path: Path) -> None:
    """`request --server-name` verifies the certificate for that name while connecting to
    127.0.0.1 (kubectl port-forward); without it, it names the flag."""
    service_name = "dns-sidecar-cloudflare.dns-system.svc"
    pki = Pki()
    secret = SecretDir(tmp_path / "tls")
    _, cert, key = pki.issue(names=(service_name,))
    secret.publish(cert, key, pki.ca_pem)
    (tmp_path / "ca.crt").write_bytes(pki.ca_pem)
    env = {
        "DNS_SIDECAR_TLS_CERT_FILE": str(secret.cert),
        "DNS_SIDECAR_TLS_KEY_FILE": str(secret.key),
    }
    with running(env=env) as service:
        flags = ["--url", f"https://127.0.0.1:{service.port}", "--cacert", str(tmp_path / "ca.crt")]
        named = run("request", "GET", "/health", *flags, "--server-name", service_name)
        assert (named.returncode, named.stdout.splitlines()[0]) == (0, "HTTP 200"), named.stderr
        unnamed = run("request", "GET", "/health", *flags)
        assert unnamed.returncode == 1
        assert "pass --server-name" in unnamed.stderr
        wrong = run("request", "GET", "/health", *flags, "--server-name", "other.example")
        assert wrong.returncode == 1
        assert "not for this host" in wrong.stderr


async def test_files_gone_or_back_to_the_pair_in_force(
    start_https: StartHttps, caplog: pytest.LogCaptureFixture
) -> None:
    """Files gone: refused, the old pair serves; the old pair back on disk clears the error
    (said once), and an unchanged pair is not loaded again."""
    https = await start_https()
    live = https.sidecar.app[TLS]
    assert await live.reload_once() is False  # unchanged: nothing to do
    data = https.secret.root / "..data"
    version = data.resolve()
    data.unlink()
    assert await live.reload_once() is False
    assert live.last_error is not None
    assert live.last_error.startswith(f"cannot read the TLS certificate {https.secret.cert}")
    assert await https.serial_served() == https.first.serial_number
    (https.secret.root / "..data").symlink_to(version.name)
    caplog.clear()
    with caplog.at_level(logging.INFO, "sidecar.protocol.tls"):
        assert await live.reload_once() is False
    assert live.last_error is None
    assert [r.getMessage() for r in caplog.records] == [
        "TLS files are good again: the pair in force is on disk"
    ]
    assert https.metric("dns_sidecar_tls_reloads_total", result="success") == 0.0


async def test_a_client_that_leaves_during_the_handshake_is_counted_not_logged(
    start_https: StartHttps, caplog: pytest.LogCaptureFixture
) -> None:
    """A TCP probe (connect, then close) is no news: counted as closed, no line logged."""
    https = await start_https()
    caplog.set_level(logging.INFO)
    _, writer = await asyncio.open_connection("127.0.0.1", https.sidecar.port)
    writer.close()
    await eventually(
        lambda: https.metric("dns_sidecar_tls_handshake_failures_total", reason="closed") == 1.0
    )
    assert [r.getMessage() for r in caplog.records if r.name.startswith("sidecar")] == []


def test_the_facts_name_every_kind_of_san(tmp_path: Path) -> None:
    """DNS names, addresses, URIs and e-mail addresses, written as openssl writes them."""
    pki = Pki()
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    sans: list[x509.GeneralName] = [
        x509.DNSName("dns-sidecar.dns-system.svc"),
        x509.IPAddress(ipaddress.ip_address("2001:db8::1")),
        x509.UniformResourceIdentifier("spiffe://cluster.local/ns/dns-system/sa/dns-sidecar"),
        x509.RFC822Name("ops@example.org"),
        x509.RegisteredID(x509.ObjectIdentifier("1.2.3.4")),
    ]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")]))
        .issuer_name(pki.cert.subject)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .sign(pki.key, hashes.SHA256())
    )
    facts = CertificateFacts.parse(cert.public_bytes(serialization.Encoding.PEM), tmp_path)
    assert facts.sans == (
        "DNS:dns-sidecar.dns-system.svc",
        "IP:2001:db8::1",
        "URI:spiffe://cluster.local/ns/dns-system/sa/dns-sidecar",
        "email:ops@example.org",
        "RID:1.2.3.4",
    )
