"""Process settings: one frozen root of small groups, read from the environment once (in ``cli``).

Variables carry the ``DNS_SIDECAR_`` prefix; the guide's ``PORT``, ``HMAC_SECRET``,
``HMAC_ALGORITHM`` and ``CLOUDFLARE_*`` names are accepted too (the prefixed name wins when both
are set). Command-line flags override both, by being passed to the constructors.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated, Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

Port = Annotated[int, Field(ge=0, le=65535)]


def _env(name: str, *legacy: str) -> AliasChoices:
    return AliasChoices(f"DNS_SIDECAR_{name}", *legacy)


class _Group(BaseSettings):
    model_config = SettingsConfigDict(
        frozen=True, extra="ignore", populate_by_name=True, env_ignore_empty=True
    )


class ServerSettings(_Group):
    """Where and how the two HTTP servers listen."""

    host: str = Field("127.0.0.1", validation_alias=_env("HOST"))
    port: Port = Field(7100, validation_alias=_env("PORT", "PORT"))
    management_host: str = Field("127.0.0.1", validation_alias=_env("MANAGEMENT_HOST"))
    management_port: Port = Field(8080, validation_alias=_env("MANAGEMENT_PORT"))
    allow_unauthenticated: bool = Field(
        default=False, validation_alias=_env("ALLOW_UNAUTHENTICATED")
    )
    max_body_bytes: int = Field(64 * 1024, ge=1024, validation_alias=_env("MAX_BODY_BYTES"))
    shutdown_timeout: float = Field(25.0, ge=0, validation_alias=_env("SHUTDOWN_TIMEOUT"))
    health_cache_seconds: float = Field(5.0, ge=0, validation_alias=_env("HEALTH_CACHE_SECONDS"))
    provider_timeout: float = Field(10.0, gt=0, validation_alias=_env("PROVIDER_TIMEOUT"))


class AuthSettings(_Group):
    """HMAC verification; clients come from the routing table, or from these for one client."""

    hmac_secret: SecretStr | None = Field(None, validation_alias=_env("HMAC_SECRET", "HMAC_SECRET"))
    hmac_algorithm: str = Field("SHA256", validation_alias=_env("HMAC_ALGORITHM", "HMAC_ALGORITHM"))
    timestamp_skew: float = Field(300.0, gt=0, validation_alias=_env("TIMESTAMP_SKEW"))
    replay_cache_size: int = Field(100_000, ge=1, validation_alias=_env("REPLAY_CACHE_SIZE"))


class LogFormat(enum.StrEnum):
    AUTO = "auto"  # JSON unless stderr is a terminal
    JSON = "json"
    CONSOLE = "console"


class LogSettings(_Group):
    format: LogFormat = Field(LogFormat.AUTO, validation_alias=_env("LOG_FORMAT"))
    level: str = Field("INFO", validation_alias=_env("LOG_LEVEL"))


class TableSettings(_Group):
    """The routing table file, and what serves when there is none."""

    config: Path | None = Field(None, validation_alias=_env("CONFIG"))
    memory_file: Path | None = Field(None, validation_alias=_env("MEMORY_FILE"))
    reload_interval: float = Field(30.0, gt=0, validation_alias=_env("RELOAD_INTERVAL"))
    reload_debounce_ms: int = Field(100, ge=1, validation_alias=_env("RELOAD_DEBOUNCE_MS"))


class KubernetesSettings(_Group):
    """Where Secrets and DNSClasses are read from (only when the routing table names them)."""

    kubeconfig: Path | None = Field(None, validation_alias=_env("KUBECONFIG", "KUBECONFIG"))
    namespace: str | None = Field(None, validation_alias=_env("NAMESPACE", "POD_NAMESPACE"))
    sync_timeout: float = Field(10.0, ge=0, validation_alias=_env("KUBERNETES_SYNC_TIMEOUT"))
    service_host: str | None = Field(
        None,
        validation_alias=AliasChoices("KUBERNETES_SERVICE_HOST"),
        description="Set by Kubernetes in every pod: when set, and no kubeconfig is given, the "
        "API server is reached with the pod's service account (in-cluster configuration).",
    )

    @property
    def in_cluster(self) -> bool:
        return self.service_host is not None


class WatchSettings(_Group):
    """How each Secret and DNSClass the routing table names is followed (list, then watch)."""

    list_timeout: float = Field(
        10.0,
        gt=0,
        validation_alias=_env("WATCH_LIST_TIMEOUT"),
        description="Seconds a list request (and connecting a watch) may take.",
    )
    watch_seconds: int = Field(
        290,
        ge=1,
        validation_alias=_env("WATCH_SECONDS"),
        description="Seconds the API server keeps each watch open; it is then opened again.",
    )
    backoff_initial: float = Field(
        0.5,
        gt=0,
        validation_alias=_env("WATCH_BACKOFF_INITIAL"),
        description="Seconds before the first reconnect after a failure (then doubled, jittered).",
    )
    backoff_max: float = Field(
        30.0,
        gt=0,
        validation_alias=_env("WATCH_BACKOFF_MAX"),
        description="The longest wait between reconnects, in seconds.",
    )


class CloudflareSeedSettings(_Group):
    """The guide's ``CLOUDFLARE_*`` variables: with no routing table, one Cloudflare account."""

    api_token: SecretStr | None = Field(None, validation_alias=AliasChoices("CLOUDFLARE_API_TOKEN"))
    api_key: SecretStr | None = Field(None, validation_alias=AliasChoices("CLOUDFLARE_API_KEY"))
    email: str | None = Field(None, validation_alias=AliasChoices("CLOUDFLARE_EMAIL"))
    base_url: str | None = Field(None, validation_alias=AliasChoices("CLOUDFLARE_BASE_URL"))

    @property
    def configured(self) -> bool:
        return self.api_token is not None or (self.api_key is not None and self.email is not None)


class Settings(BaseModel):
    """The root; build it once with :meth:`from_env` and pass it down."""

    model_config = ConfigDict(frozen=True)

    server: ServerSettings = Field(default_factory=ServerSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    log: LogSettings = Field(default_factory=LogSettings)
    table: TableSettings = Field(default_factory=TableSettings)
    cloudflare: CloudflareSeedSettings = Field(default_factory=CloudflareSeedSettings)
    kubernetes: KubernetesSettings = Field(default_factory=KubernetesSettings)
    watch: WatchSettings = Field(default_factory=WatchSettings)

    @classmethod
    def from_env(
        cls,
        *,
        server: dict[str, Any] | None = None,
        table: dict[str, Any] | None = None,
        log: dict[str, Any] | None = None,
    ) -> Settings:
        """Environment first, then the given overrides (the command-line flags) on top."""
        return cls(
            server=ServerSettings(**_set(server)),
            auth=AuthSettings(),
            log=LogSettings(**_set(log)),
            table=TableSettings(**_set(table)),
            cloudflare=CloudflareSeedSettings(),
            kubernetes=KubernetesSettings(),
            watch=WatchSettings(),
        )


def _set(overrides: dict[str, Any] | None) -> dict[str, Any]:
    return {key: value for key, value in (overrides or {}).items() if value is not None}
