"""Scenario 7: HTTPS on the protocol port, beside plain HTTP in the same run.

Two sidecars as they ship (HMAC, access log, metrics), one with ``DNS_SIDECAR_TLS_CERT_FILE``
and ``_KEY_FILE`` (an ECDSA P-256 certificate from a CA made here), one without, driven by wrk
in alternating rounds: the signed 50/50 mix over keep-alive connections (what TLS costs per
request once connected), then signed GETs that each close their connection (``Connection:
close``: wrk opens a new one per request, so each costs a TCP connection and, over HTTPS, a full
TLS handshake).
"""

from __future__ import annotations

import datetime
import ipaddress
import statistics
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bench import presigned, processes, wrk
from bench.scenarios import Row, Sizes


def certificate_pair(directory: Path) -> tuple[Path, Path]:
    """A CA and a server certificate for 127.0.0.1 it issued: (chain file, key file)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    address = x509.IPAddress(ipaddress.ip_address("127.0.0.1"))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dns-sidecar")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([address]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    cert_file, key_file = directory / "tls.crt", directory / "tls.key"
    pem = serialization.Encoding.PEM
    cert_file.write_bytes(cert.public_bytes(pem) + ca.public_bytes(pem))
    key_file.write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


def write_closing(path: Path, count: int, host: str, run: str) -> Path:
    """Signed GETs, each asking for its connection to be closed after the answer."""
    with path.open("wb") as out:
        for i in range(count + presigned.SPARE):
            raw = presigned.encode(
                presigned.get(i % presigned.NAMES), host, presigned.SECRET, f"{run}-{i}"
            )
            raw = raw.replace(b"\r\n", b"\r\nConnection: close\r\n", 1)
            out.write(b"%d\n" % len(raw) + raw)
    return path


def https(sizes: Sizes, tmp: Path) -> list[Row]:
    cert_file, key_file = certificate_pair(tmp)
    env = {"HMAC_SECRET": presigned.SECRET.decode()}
    tls = {"DNS_SIDECAR_TLS_CERT_FILE": str(cert_file), "DNS_SIDECAR_TLS_KEY_FILE": str(key_file)}
    kept: dict[str, list[wrk.Run]] = {}
    fresh: dict[str, list[wrk.Run]] = {}
    churn = max(50, sizes.mix // 5)
    with processes.sidecar(env=env) as plain, processes.sidecar(env=env | tls) as secure:
        servers = (
            ("http", plain, plain.url),
            ("https", secure, f"https://127.0.0.1:{secure.port}"),
        )
        for name, proc, url in servers:  # the names the GETs read, and a warm-up
            host = f"127.0.0.1:{proc.port}"
            seed = presigned.write(
                tmp / f"seed-{name}.req",
                presigned.upsert,
                presigned.NAMES,
                host,
                run=f"seed-{name}",
            )
            wrk.run(url, seed, 8, proc.pid)
        for round_ in range(sizes.rounds):
            for name, proc, url in servers:
                host = f"127.0.0.1:{proc.port}"
                requests = presigned.write(
                    tmp / f"{name}.req", presigned.mix, sizes.mix, host, run=f"{name}-{round_}"
                )
                result = wrk.run(url, requests, 64, proc.pid)
                assert result.errors == 0, f"{name}: {result.errors} failed requests"
                kept.setdefault(name, []).append(result)
                requests = write_closing(
                    tmp / f"{name}-close.req", churn, host, f"{name}-close-{round_}"
                )
                result = wrk.run(url, requests, 8, proc.pid)
                assert result.errors == 0, f"{name}: {result.errors} failed connections"
                fresh.setdefault(name, []).append(result)
                print(
                    f"round {round_ + 1} {name:5} keep-alive {kept[name][-1].rps:8,.0f} req/s "
                    f"{kept[name][-1].cpu_us:5.0f} us CPU/request; new connections "
                    f"{result.rps:7,.0f}/s {result.cpu_us:6.0f} us CPU/connection"
                )
    median = statistics.median
    rps = {name: median(r.rps for r in runs) for name, runs in kept.items()}
    cpu = {name: median(r.cpu_us for r in runs) for name, runs in kept.items()}
    rps_ratio = median(a.rps / b.rps for a, b in zip(kept["https"], kept["http"], strict=True))
    cpu_ratio = median(
        a.cpu_us / b.cpu_us for a, b in zip(kept["https"], kept["http"], strict=True)
    )
    cps = {name: median(r.rps for r in runs) for name, runs in fresh.items()}
    per_conn = {name: median(r.cpu_us for r in runs) for name, runs in fresh.items()}
    handshake = median(
        a.cpu_us - b.cpu_us for a, b in zip(fresh["https"], fresh["http"], strict=True)
    )
    mix = "signed 50/50 upsert/GET c=64 keep-alive"
    return [
        Row(
            "7 https",
            f"{mix}: throughput over HTTPS (plain HTTP in the same run)",
            f"{rps['https']:,.0f} req/s ({rps_ratio:.2f}x)",
            f"{rps['http']:,.0f} req/s",
        ),
        Row(
            "7 https",
            f"{mix}: server CPU per request over HTTPS",
            f"{cpu['https']:.0f} us ({cpu_ratio:.2f}x)",
            f"{cpu['http']:.0f} us",
        ),
        Row(
            "7 https",
            "new connections, one signed GET each, c=8: connections per second",
            f"{cps['https']:,.0f}/s",
            f"{cps['http']:,.0f}/s",
        ),
        Row(
            "7 https",
            "server CPU per new connection (TCP + TLS handshake + one GET)",
            f"{per_conn['https']:.0f} us (handshake +{handshake:.0f} us)",
            f"{per_conn['http']:.0f} us",
        ),
    ]
