"""Where a credential comes from: a Kubernetes Secret, an environment variable, a file, a value.

These models are part of the routing-table schema; ``read_local`` reads the three sources that
need no cluster. ``secretRef`` is read by ``sidecar.credentials.kubernetes``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Discriminator, Field, SecretStr, StringConstraints, Tag

from sidecar.errors import ProviderUnavailable

Name = Annotated[str, StringConstraints(min_length=1, max_length=253)]


class _CredentialModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SecretKeyRef(_CredentialModel):
    namespace: Name | None = None  # defaults to the pod's namespace
    name: Name
    key: Name


class FromSecret(_CredentialModel):
    secret_ref: SecretKeyRef = Field(alias="secretRef")

    def describe(self) -> str:
        ref = self.secret_ref
        return f"Secret {ref.namespace or '<pod namespace>'}/{ref.name} key {ref.key}"


class FromEnv(_CredentialModel):
    env: Name

    def describe(self) -> str:
        return f"environment variable {self.env}"


class FromFile(_CredentialModel):
    file: Path

    def describe(self) -> str:
        return f"file {self.file}"


class FromValue(_CredentialModel):
    value: SecretStr

    def describe(self) -> str:
        return "inline value"


_SOURCES = ("secretRef", "env", "file", "value")


def _source(data: Any) -> str | None:
    if isinstance(data, BaseModel):
        tags: dict[type[BaseModel], str] = {
            FromSecret: "secretRef",
            FromEnv: "env",
            FromFile: "file",
        }
        return tags.get(type(data), "value")
    if isinstance(data, dict):
        found = [key for key in _SOURCES if key in data]
        return found[0] if len(found) == 1 else None
    return None


Credential = Annotated[
    Annotated[FromSecret, Tag("secretRef")]
    | Annotated[FromEnv, Tag("env")]
    | Annotated[FromFile, Tag("file")]
    | Annotated[FromValue, Tag("value")],
    Discriminator(
        _source,
        custom_error_type="credential_source",
        custom_error_message="a credential is exactly one of {secretRef}, {env}, {file}, {value}",
    ),
]


class CredentialUnavailable(ProviderUnavailable):
    """A credential's source has nothing to give (unset variable, missing file or Secret)."""


def read_local(credential: FromEnv | FromFile | FromValue) -> str:
    """The credential's current text (surrounding whitespace and newlines stripped)."""
    if isinstance(credential, FromValue):
        text = credential.value.get_secret_value()
    elif isinstance(credential, FromEnv):
        text = os.environ.get(credential.env, "")
    else:
        try:
            text = credential.file.read_text(encoding="utf-8")
        except OSError as err:
            raise CredentialUnavailable(
                f"Cannot read the credential {credential.describe()}: {err.strerror or err}."
            ) from err
    text = text.strip()
    if not text:
        raise CredentialUnavailable(f"The credential {credential.describe()} is empty or unset.")
    return text
