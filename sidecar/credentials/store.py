"""Reading credentials, always current, without a provider call or a restart.

``{env}`` and ``{value}`` are read as they are; ``{file}`` is re-read whenever the file behind
the path changes (a mounted Secret swaps its ``..data`` symlink; each read is one ``stat``);
``{secretRef}`` comes from a Kubernetes watch of that Secret. Reads are synchronous and cheap, so
providers and the HMAC verifier ask at every use and a rotation takes effect on the next request.

The Kubernetes client is created (and ``kubernetes_asyncio``, a large import, loaded) only once
the routing table names a Secret or a DNSClass.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sidecar.credentials import dnsclass
from sidecar.credentials.dnsclass import DnsClassAuth
from sidecar.credentials.sources import (
    Credential,
    CredentialUnavailable,
    FromEnv,
    FromFile,
    FromSecret,
    FromValue,
    SecretKeyRef,
    read_local,
)

if TYPE_CHECKING:
    from sidecar.credentials.kubernetes import KubernetesObjects
    from sidecar.credentials.objects import Secret
    from sidecar.credentials.watch import ObjectWatch

log = logging.getLogger(__name__)

_FileKey = tuple[int, int, int, int]  # device, inode, size, mtime


class CredentialStore:
    def __init__(self, kubernetes: Callable[[], KubernetesObjects] | None = None) -> None:
        self._make_kubernetes = kubernetes
        self.kubernetes: KubernetesObjects | None = None
        self._files: dict[Path, tuple[_FileKey, str]] = {}
        self._wanted: list[Credential] = []
        self._dns_classes: list[str] = []
        self._inline: set[str] = set()  # DNSClasses already warned about an inline secret
        self._started = False

    async def start(self) -> None:
        self._started = True
        await self.track(self._wanted, self._dns_classes)

    async def stop(self) -> None:
        if self.kubernetes is not None:
            await self.kubernetes.stop()

    def loops(self) -> dict[str, dict[str, Any]]:
        """The Kubernetes watches, as ``/status`` shows supervised loops (none without any)."""
        return self.kubernetes.loops() if self.kubernetes is not None else {}

    async def wait_synced(self, seconds: float) -> None:
        if self.kubernetes is not None:
            await self.kubernetes.wait_synced(seconds)

    async def track(
        self, credentials: Iterable[Credential], dns_classes: Iterable[str] = ()
    ) -> None:
        """Follow the Secrets and DNSClasses named (and only those, plus the Secrets that the
        DNSClasses name, which are followed once the DNSClasses are read)."""
        self._wanted = list(credentials)
        self._dns_classes = list(dns_classes)
        if not self._started:
            return
        needed = self._dns_classes or any(isinstance(c, FromSecret) for c in self._wanted)
        if needed and self.kubernetes is None and self._make_kubernetes is not None:
            self.kubernetes = self._make_kubernetes()
            await self.kubernetes.start()
            self.kubernetes.on_change(
                lambda kind: self._follow()
            )  # a DNSClass may name a new Secret
        self._follow()

    def narrow(self, credentials: Iterable[Credential], dns_classes: Iterable[str] = ()) -> None:
        """Follow only these, a subset of what ``track`` was last given (nothing new starts;
        the watches no longer needed stop)."""
        self._wanted = list(credentials)
        self._dns_classes = list(dns_classes)
        if self._started:
            self._follow()

    def _follow(self) -> None:
        if self.kubernetes is None:
            return
        for name in self._dns_classes:
            self.kubernetes.watch_dns_class(name)
        self.kubernetes.keep_only("DNSClass", {("DNSClass", n) for n in self._dns_classes})
        keys: set[tuple[str, ...]] = set()
        for credential in [*self._wanted, *self._dns_class_secrets()]:
            if isinstance(credential, FromSecret):
                namespace, name = self._where(credential)
                self.kubernetes.watch_secret(namespace, name)
                keys.add(("Secret", namespace, name))
        self.kubernetes.keep_only("Secret", keys)

    def read(self, credential: Credential) -> str:
        """The credential's current text, or ``CredentialUnavailable`` naming its source."""
        if isinstance(credential, FromSecret):
            return self._secret(credential)
        if isinstance(credential, FromFile):
            return self._file(credential)
        assert isinstance(credential, FromEnv | FromValue)
        return read_local(credential)

    def hmac_keys(self, credential: Credential) -> tuple[bytes, ...]:
        """The keys an HMAC secret verifies with: its text, and for a Kubernetes Secret also the
        bytes as stored when they differ. The operator signs with a Secret's value byte for
        byte, so a value written with a trailing newline (``--from-file``) must still verify."""
        if not isinstance(credential, FromSecret):
            return (self.read(credential).encode(),)
        text, stored = self._secret_parts(credential)
        keys = (text.encode(),)
        return keys if stored in keys else (*keys, stored)

    def _dns_class_secrets(self) -> list[Credential]:
        """The Secrets the DNSClasses name (called at each change: it also warns, once per
        DNSClass, about an inline ``spec.hmacAuth.secret``)."""
        found: list[Credential] = []
        for name in self._dns_classes:
            try:
                auth = self.dns_class(name)
            except CredentialUnavailable:
                continue
            self._warn_inline(auth)
            if auth.secret is not None:
                found.append(auth.secret)
        return found

    def _warn_inline(self, auth: DnsClassAuth) -> None:
        if not auth.has_inline:
            self._inline.discard(auth.name)
        elif auth.name not in self._inline:
            self._inline.add(auth.name)
            log.warning(
                "DNSClass %s signs with spec.hmacAuth.secret, an inline secret that the CRD "
                "calls for testing only (anyone who can read the DNSClass can sign); it wins "
                "over secretRef. Use secretRef in production.",
                auth.name,
            )

    def dns_class(self, name: str) -> DnsClassAuth:
        """What DNSClass ``name`` says now, or ``CredentialUnavailable`` naming the object."""
        if self.kubernetes is None:
            raise CredentialUnavailable(f"DNSClass {name}: {self._no_kubernetes()}.")
        watch = self.kubernetes.dns_class(name)
        if watch is None:
            why = self.kubernetes.unavailable or "not watched yet"
            raise CredentialUnavailable(f"DNSClass {name}: {why}.")
        if watch.object is None:
            if watch.error:
                raise CredentialUnavailable(f"DNSClass {name} cannot be read: {watch.error}.")
            if not watch.synced.is_set():
                raise CredentialUnavailable(f"DNSClass {name}: not read from the API server yet.")
            raise CredentialUnavailable(f"DNSClass {name} does not exist.")
        return dnsclass.parse(name, watch.object)

    def _no_kubernetes(self) -> str:
        if self._make_kubernetes is None:
            return "the Kubernetes API is not enabled in this process"
        return "the Kubernetes API is not connected yet"

    def _where(self, credential: FromSecret) -> tuple[str, str]:
        ref = credential.secret_ref
        assert self.kubernetes is not None
        return ref.namespace or self.kubernetes.default_namespace, ref.name

    def _secret(self, credential: FromSecret) -> str:
        return self._secret_parts(credential)[0]

    def _secret_parts(self, credential: FromSecret) -> tuple[str, bytes]:
        if self.kubernetes is None:
            raise CredentialUnavailable(f"{credential.describe()}: {self._no_kubernetes()}.")
        namespace, name = self._where(credential)
        watch = self.kubernetes.secret(namespace, name)
        return _secret_text(watch, credential.secret_ref, namespace, self.kubernetes.unavailable)

    def _file(self, credential: FromFile) -> str:
        path = credential.file
        try:
            info = path.stat()  # follows the ..data symlink of a mounted Secret
        except OSError as err:
            self._files.pop(path, None)
            raise CredentialUnavailable(
                f"Cannot read the credential {credential.describe()}: {err.strerror or err}."
            ) from err
        key = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
        cached = self._files.get(path)
        if cached is not None and cached[0] == key:
            return cached[1]
        text = read_local(credential)
        if cached is not None and cached[1] != text:
            log.info("credential %s changed", credential.describe())
        self._files[path] = (key, text)
        return text


def _secret_text(
    watch: ObjectWatch[Secret] | None, ref: SecretKeyRef, namespace: str, why: str | None
) -> tuple[str, bytes]:
    """The value of ``ref`` as text (stripped) and as the bytes stored, or why there is none."""
    where = f"Secret {namespace}/{ref.name} key {ref.key}"
    if watch is None:
        raise CredentialUnavailable(f"{where}: {why or 'not watched yet'}.")
    if watch.object is None:
        if not watch.synced.is_set():
            raise CredentialUnavailable(f"{where}: not read from the API server yet.")
        if watch.error:
            raise CredentialUnavailable(f"{where}: {watch.error}.")
        raise CredentialUnavailable(f"{where}: the Secret does not exist.")
    data = watch.object.get("data") or {}
    if ref.key not in data:
        keys = ", ".join(sorted(data)) or "none"
        raise CredentialUnavailable(f"{where}: the Secret has no such key (keys: {keys}).")
    try:
        stored = base64.b64decode(data[ref.key], validate=True)
        text = stored.decode("utf-8").strip()
    except (binascii.Error, UnicodeDecodeError) as err:
        raise CredentialUnavailable(f"{where}: the value is not base64 UTF-8 text.") from err
    if not text:
        raise CredentialUnavailable(f"{where}: the value is empty.")
    return text, stored
