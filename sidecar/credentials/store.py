"""Reading credentials, always current, without a provider call or a restart.

``{env}`` and ``{value}`` are read as they are; ``{file}`` is re-read whenever the file behind
the path changes (a mounted Secret swaps its ``..data`` symlink; each read is one ``stat``);
``{secretRef}`` comes from a Kubernetes watch of that Secret. Reads are synchronous and cheap, so
providers and the HMAC verifier ask at every use and a rotation takes effect on the next request.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path

from sidecar.credentials import dnsclass
from sidecar.credentials.dnsclass import DnsClassAuth
from sidecar.credentials.kubernetes import KubernetesObjects, ObjectWatch, secret_value
from sidecar.credentials.sources import (
    Credential,
    CredentialUnavailable,
    FromEnv,
    FromFile,
    FromSecret,
    FromValue,
    read_local,
)

log = logging.getLogger(__name__)

_FileKey = tuple[int, int, int, int]  # device, inode, size, mtime


class CredentialStore:
    def __init__(self, kubernetes: KubernetesObjects | None = None) -> None:
        self.kubernetes = kubernetes
        self._files: dict[Path, tuple[_FileKey, str]] = {}
        self._listeners: list[Callable[[], None]] = []
        self._wanted: list[Credential] = []
        self._dns_classes: list[str] = []
        self._started = False

    def on_change(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    def changed(self) -> None:
        for listener in self._listeners:
            listener()

    async def start(self) -> None:
        if self.kubernetes is not None:
            await self.kubernetes.start()
        self._started = True
        self.track(self._wanted, self._dns_classes)

    async def stop(self) -> None:
        if self.kubernetes is not None:
            await self.kubernetes.stop()

    def read(self, credential: Credential) -> str:
        """The credential's current text, or ``CredentialUnavailable`` naming its source."""
        if isinstance(credential, FromSecret):
            return self._secret(credential)
        if isinstance(credential, FromFile):
            return self._file(credential)
        assert isinstance(credential, FromEnv | FromValue)
        return read_local(credential)

    def track(self, credentials: Iterable[Credential], dns_classes: Iterable[str] = ()) -> None:
        """Follow the Secrets and DNSClasses named (and only those, plus the Secrets that the
        DNSClasses name, which are followed as they are read)."""
        self._wanted = list(credentials)
        self._dns_classes = list(dns_classes)
        if self.kubernetes is None or not self._started:
            return
        for name in self._dns_classes:
            self.kubernetes.dns_class(name)
        self.kubernetes.keep_only("DNSClass", {("DNSClass", n) for n in self._dns_classes})
        keys: set[tuple[str, ...]] = set()
        for credential in [*self._wanted, *self._dns_class_secrets()]:
            if isinstance(credential, FromSecret):
                namespace, name = self._where(credential)
                self.kubernetes.secret(namespace, name)
                keys.add(("Secret", namespace, name))
        self.kubernetes.keep_only("Secret", keys)

    def _dns_class_secrets(self) -> list[Credential]:
        found: list[Credential] = []
        for name in self._dns_classes:
            try:
                secret = self.dns_class(name).secret
            except CredentialUnavailable:
                continue
            if secret is not None:
                found.append(secret)
        return found

    def dns_class(self, name: str) -> DnsClassAuth:
        """What DNSClass ``name`` says now, or ``CredentialUnavailable`` naming the object."""
        if self.kubernetes is None:
            raise CredentialUnavailable(
                f"DNSClass {name}: the Kubernetes API is not enabled in this process."
            )
        watch = self.kubernetes.dns_class(name) if self._started else None
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

    def _where(self, credential: FromSecret) -> tuple[str, str]:
        ref = credential.secret_ref
        assert self.kubernetes is not None
        return ref.namespace or self.kubernetes.default_namespace, ref.name

    def _secret(self, credential: FromSecret) -> str:
        ref = credential.secret_ref
        if self.kubernetes is None:
            raise CredentialUnavailable(
                f"{credential.describe()}: Kubernetes Secrets are not enabled in this process."
            )
        namespace, name = self._where(credential)
        watch: ObjectWatch | None = None
        if self._started:
            watch = self.kubernetes.secret(namespace, name)
        return secret_value(watch, ref, namespace, self.kubernetes.unavailable)

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
