"""Process settings: one frozen root of small groups, read from the environment once (in ``cli``).

Variables carry the ``DNS_SIDECAR_`` prefix; the guide's ``PORT``, ``HMAC_SECRET``,
``HMAC_ALGORITHM`` and ``CLOUDFLARE_*`` names are accepted too (the prefixed name wins when both
are set). Command-line flags override both, by being passed to the constructors.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
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

    host: str = Field(
        "127.0.0.1",
        validation_alias=_env("HOST"),
        description="Protocol listen address; a non-loopback one needs an HMAC secret.",
        json_schema_extra={"flag": "--host"},
    )
    port: Port = Field(
        7100,
        validation_alias=_env("PORT", "PORT"),
        description="Protocol port.",
        json_schema_extra={"flag": "--port"},
    )
    management_host: str = Field(
        "127.0.0.1",
        validation_alias=_env("MANAGEMENT_HOST"),
        description="Management listen address (/livez, /readyz, /metrics, /status).",
        json_schema_extra={"flag": "--management-host"},
    )
    management_port: Port = Field(
        8080,
        validation_alias=_env("MANAGEMENT_PORT"),
        description="Management port.",
        json_schema_extra={"flag": "--management-port"},
    )
    allow_unauthenticated: bool = Field(
        default=False,
        validation_alias=_env("ALLOW_UNAUTHENTICATED"),
        description="Accept unsigned requests on a non-loopback address (labs only).",
        json_schema_extra={"flag": "--allow-unauthenticated"},
    )
    max_body_bytes: int = Field(
        64 * 1024,
        ge=1024,
        validation_alias=_env("MAX_BODY_BYTES"),
        description="Largest request body; a larger one is answered 413 PAYLOAD_TOO_LARGE.",
    )
    shutdown_timeout: float = Field(
        25.0,
        ge=0,
        validation_alias=_env("SHUTDOWN_TIMEOUT"),
        description="Seconds from SIGTERM to exit, in total (drain, cancel, close).",
    )
    drain_delay: float = Field(
        0.0,
        ge=0,
        validation_alias=_env("DRAIN_DELAY"),
        description="Seconds the protocol port keeps accepting after SIGTERM while /readyz "
        "says 503, so a Service stops routing here first (part of the shutdown timeout).",
    )
    health_cache_seconds: float = Field(
        5.0,
        ge=0,
        validation_alias=_env("HEALTH_CACHE_SECONDS"),
        description="Seconds an account's health verdict is reused before it is checked again.",
    )
    provider_timeout: float = Field(
        10.0,
        gt=0,
        validation_alias=_env("PROVIDER_TIMEOUT"),
        description="Seconds per provider API call before it counts as unavailable (503).",
    )

    # connections on the protocol port (SPEC section 8)
    read_timeout: float = Field(
        5.0,
        gt=0,
        validation_alias=_env("READ_TIMEOUT"),
        description="Seconds a connection has to send a request head, and again its body; a "
        "slow head is closed, a slow body is answered 400 INVALID_REQUEST.",
    )
    max_connections: int | None = Field(
        None,
        ge=1,
        validation_alias=_env("MAX_CONNECTIONS"),
        description="Open connections allowed on the protocol port; by default the "
        "file-descriptor limit (RLIMIT_NOFILE) less 1/8 of it, at least 64 less.",
    )


class TlsSettings(_Group):
    """HTTPS on the protocol port (the management port stays plain HTTP)."""

    cert_file: Path | None = Field(
        None,
        validation_alias=_env("TLS_CERT_FILE"),
        description="PEM certificate (the chain may follow it) for HTTPS on the protocol port; "
        "with DNS_SIDECAR_TLS_KEY_FILE. Reloaded when it changes (a renewed Secret).",
    )
    key_file: Path | None = Field(
        None,
        validation_alias=_env("TLS_KEY_FILE"),
        description="PEM private key of that certificate (unencrypted); with "
        "DNS_SIDECAR_TLS_CERT_FILE.",
    )

    @model_validator(mode="after")
    def _both_or_neither(self) -> TlsSettings:
        if (self.cert_file is None) != (self.key_file is None):
            given, missing = (
                ("DNS_SIDECAR_TLS_CERT_FILE", "DNS_SIDECAR_TLS_KEY_FILE")
                if self.key_file is None
                else ("DNS_SIDECAR_TLS_KEY_FILE", "DNS_SIDECAR_TLS_CERT_FILE")
            )
            msg = (
                f"{given} is set but {missing} is not: set {missing} too to serve HTTPS "
                f"(both PEM files), or unset {given} to serve plain HTTP"
            )
            raise ValueError(msg)
        return self

    @property
    def enabled(self) -> bool:
        return self.cert_file is not None and self.key_file is not None


class AuthSettings(_Group):
    """HMAC verification; clients come from the routing table, or from these for one client."""

    hmac_secret: SecretStr | None = Field(
        None,
        validation_alias=_env("HMAC_SECRET", "HMAC_SECRET"),
        description="The one client's HMAC secret when the routing table names no clients.",
    )
    hmac_algorithm: str = Field(
        "SHA256",
        validation_alias=_env("HMAC_ALGORITHM", "HMAC_ALGORITHM"),
        description="SHA256 or SHA512, for that one client.",
    )
    timestamp_skew: float = Field(
        300.0,
        gt=0,
        validation_alias=_env("TIMESTAMP_SKEW"),
        description="Seconds a signed request's timestamp may be off, either way.",
    )
    replay_cache_size: int = Field(
        100_000,
        ge=1,
        validation_alias=_env("REPLAY_CACHE_SIZE"),
        description="Nonces remembered in-process; when full of unexpired ones, requests are "
        "refused (429), never let through.",
    )


class LogFormat(enum.StrEnum):
    AUTO = "auto"  # JSON unless stderr is a terminal
    JSON = "json"
    CONSOLE = "console"


class LogSettings(_Group):
    format: LogFormat = Field(
        LogFormat.AUTO,
        validation_alias=_env("LOG_FORMAT"),
        description="auto (JSON unless stderr is a terminal), json or console.",
        json_schema_extra={"flag": "--log-format"},
    )
    level: str = Field(
        "INFO",
        validation_alias=_env("LOG_LEVEL"),
        description="DEBUG, INFO (one line per request), WARNING or ERROR.",
    )


class TableSettings(_Group):
    """The routing table file, and what serves when there is none."""

    config: Path | None = Field(
        None,
        validation_alias=_env("CONFIG"),
        description="The routing table YAML file; none: the embedded default (or seed mode).",
        json_schema_extra={"flag": "--config"},
    )
    memory_file: Path | None = Field(
        None,
        validation_alias=_env("MEMORY_FILE"),
        description="A JSON snapshot that keeps the embedded default's records across restarts.",
    )
    reload_interval: float = Field(
        30.0,
        gt=0,
        validation_alias=_env("RELOAD_INTERVAL"),
        description="Seconds between re-checks of the routing table (and the TLS files), behind "
        "the file watcher.",
    )
    reload_debounce_ms: int = Field(
        100,
        ge=1,
        validation_alias=_env("RELOAD_DEBOUNCE_MS"),
        description="Milliseconds of quiet after a file event before the table (or the TLS "
        "pair) is re-read.",
    )
    owner_id: str = Field(
        "dns-sidecar",
        min_length=1,
        max_length=63,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        validation_alias=_env("OWNER_ID"),
        description="This deployment's name in the ownership marker of the records it writes; "
        "give each cluster or deployment that shares a zone its own.",
    )


class KubernetesSettings(_Group):
    """Where Secrets and DNSClasses are read from (only when the routing table names them)."""

    kubeconfig: Path | None = Field(
        None,
        validation_alias=_env("KUBECONFIG", "KUBECONFIG"),
        description="A kubeconfig file, when not in a cluster; none: in-cluster, else "
        "~/.kube/config.",
    )
    namespace: str | None = Field(
        None,
        validation_alias=_env("NAMESPACE", "POD_NAMESPACE"),
        description="The namespace of a secretRef without one; none: the pod's.",
    )
    sync_timeout: float = Field(
        10.0,
        ge=0,
        validation_alias=_env("KUBERNETES_SYNC_TIMEOUT"),
        description="Seconds start-up waits for the first read of each Secret and DNSClass.",
    )
    service_host: str | None = Field(
        None,
        validation_alias=AliasChoices("KUBERNETES_SERVICE_HOST"),
        description="Set by Kubernetes in every pod: when set, and no kubeconfig is given, the "
        "API server is reached with the pod's service account (in-cluster configuration).",
    )
    dnsrecord_namespaces: str | None = Field(
        None,
        validation_alias=_env("DNSRECORD_NAMESPACES"),
        description="Namespaces whose DNSRecords are read, comma separated (one watch each); "
        "none: one watch across all namespaces. Only with a dnsClass client.",
    )
    dnsrecord_wait: float = Field(
        3.0,
        ge=0,
        validation_alias=_env("DNSRECORD_WAIT"),
        description="Seconds a bare MX host or SRV target waits for its DNSRecord to be seen, "
        "then 400 INVALID_RECORD.",
    )

    @property
    def in_cluster(self) -> bool:
        return self.service_host is not None

    @property
    def dnsrecord_scopes(self) -> tuple[str, ...]:
        """``dnsrecord_namespaces`` as a list; empty: all namespaces."""
        parts = (self.dnsrecord_namespaces or "").split(",")
        return tuple(dict.fromkeys(part.strip() for part in parts if part.strip()))


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
        description="Seconds before reconnecting after a watch ends (then doubled, jittered).",
    )
    backoff_max: float = Field(
        30.0,
        gt=0,
        validation_alias=_env("WATCH_BACKOFF_MAX"),
        description="The longest wait between reconnects, in seconds.",
    )


class CloudflareSeedSettings(_Group):
    """The guide's ``CLOUDFLARE_*`` variables: with no routing table, one Cloudflare account."""

    api_token: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("CLOUDFLARE_API_TOKEN"),
        description="Seed mode: an API token for the one Cloudflare account.",
    )
    api_key: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("CLOUDFLARE_API_KEY"),
        description="Seed mode: a global API key (with CLOUDFLARE_EMAIL).",
    )
    email: str | None = Field(
        None,
        validation_alias=AliasChoices("CLOUDFLARE_EMAIL"),
        description="Seed mode: the email that goes with CLOUDFLARE_API_KEY.",
    )
    base_url: str | None = Field(
        None,
        validation_alias=AliasChoices("CLOUDFLARE_BASE_URL"),
        description="Seed mode: another API endpoint (the emulator).",
    )

    @property
    def configured(self) -> bool:
        return self.api_token is not None or (self.api_key is not None and self.email is not None)


class RedisSettings(_Group):
    """Shared state for several replicas (Redis or Valkey); unset: one replica, state in memory."""

    url: SecretStr | None = Field(
        None,
        validation_alias=_env("REDIS_URL"),
        description="redis://[user:password@]host:port/db or rediss://...; every replica of one "
        "deployment then shares nonces, write locks, request budgets and read-cache versions.",
    )
    password_file: Path | None = Field(
        None,
        validation_alias=_env("REDIS_PASSWORD_FILE"),
        description="A file holding the Redis password (a mounted Secret); read at each new "
        "connection, and used instead of a password in the URL.",
    )
    prefix: str = Field(
        "dns-sidecar",
        min_length=1,
        validation_alias=_env("REDIS_PREFIX"),
        description="Namespace of every key, so several deployments can share one server.",
    )
    timeout: float = Field(
        2.0,
        gt=0,
        validation_alias=_env("REDIS_TIMEOUT"),
        description="Seconds any one Redis call may take before the request is refused (503); "
        "it includes the time the process is busy elsewhere, so not much below a second.",
    )
    lock_lease: float = Field(
        30.0,
        gt=0,
        validation_alias=_env("REDIS_LOCK_LEASE"),
        description="Seconds a write lock lives if its holder dies; at least twice the provider "
        "timeout plus the Redis timeout, plus one second (raised to that when set lower).",
    )
    lock_wait: float = Field(
        10.0,
        gt=0,
        validation_alias=_env("REDIS_LOCK_WAIT"),
        description="Seconds a write waits for its lock before it is refused (503, retryable).",
    )
    ping_interval: float = Field(
        2.0,
        gt=0,
        validation_alias=_env("REDIS_PING_INTERVAL"),
        description="Seconds between pings while idle, so readiness reflects Redis's state; plus "
        "the Redis timeout, the longest any replica serves a set older than an acknowledged "
        "write, and the longest a retried Redis write waits between attempts.",
    )


class SweepSettings(_Group):
    """The sweeps comparing the DNSRecords with what the zones hold (SPEC section 9)."""

    interval: float = Field(
        300.0,
        ge=0,
        validation_alias=_env("SWEEP_INTERVAL"),
        description="Seconds between sweeps comparing the DNSRecords with each zone routed for "
        "a dnsClass client (orphans, drift, conflicts); 0 turns sweeps off, else at least 1.",
    )
    orphan_grace: float = Field(
        600.0,
        ge=1,
        validation_alias=_env("ORPHAN_GRACE"),
        description="Seconds a record set must stay an orphan, across two sweeps or more, "
        "before a zone with orphans: prune deletes it.",
    )

    @field_validator("interval")
    @classmethod
    def _off_or_a_second(cls, value: float) -> float:
        if 0 < value < 1:
            raise ValueError("must be 0 (sweeps off) or at least 1 second")
        return value


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
    redis: RedisSettings = Field(default_factory=RedisSettings)
    sweeps: SweepSettings = Field(default_factory=SweepSettings)
    tls: TlsSettings = Field(default_factory=TlsSettings)

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
            redis=RedisSettings(),
            sweeps=SweepSettings(),
            tls=TlsSettings(),
        )


def _set(overrides: dict[str, Any] | None) -> dict[str, Any]:
    return {key: value for key, value in (overrides or {}).items() if value is not None}


GROUPS: tuple[type[_Group], ...] = (
    ServerSettings,
    AuthSettings,
    LogSettings,
    TableSettings,
    KubernetesSettings,
    WatchSettings,
    CloudflareSeedSettings,
    RedisSettings,
    SweepSettings,
    TlsSettings,
)


# --- the settings table of docs/configuration.md, generated from the declarations above -----


def reference_table() -> str:
    """Every setting as a Markdown table: variables, flag, default, and its description.

    The settings table of docs/configuration.md is this text (``make settings-table``
    rewrites it; a test compares the two), so the documentation cannot drift from the
    declarations.
    """
    rows = ["| variable | flag | default | what it does |", "|---|---|---|---|"]
    for group in GROUPS:
        for name, field in group.model_fields.items():
            names = _names(name, field)
            variable = f"`{names[0]}`"
            if len(names) > 1:
                variable += " (or " + ", ".join(f"`{other}`" for other in names[1:]) + ")"
            flag = f"`{_flag(field)}`" if _flag(field) else ""
            rows.append(
                f"| {variable} | {flag} | {_default(field.default)} | {field.description} |"
            )
    return "\n".join(rows) + "\n"


def _default(value: object) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, enum.Enum):
        value = value.value
    return f"`{value}`"


# --- saying what is wrong with a setting (for the command line) ------------------------------


def describe_settings_error(err: ValidationError) -> list[str]:
    """One line per invalid setting: its names, the value given, and what is allowed."""
    group = next((group for group in GROUPS if group.__name__ == err.title), None)
    lines = []
    for error in err.errors():
        if not error["loc"]:  # a rule between settings: its message names them
            lines.append(f"invalid settings: {_allowed(error, None)}")
            continue
        key = str(error["loc"][0])
        name, field = _field(group, key)
        names = _names(name, field) + ([flag] if (flag := _flag(field)) else [])
        where = f" ({', '.join(names)})" if names else ""
        lines.append(f"invalid setting {name}{where}: {error['input']!r}: {_allowed(error, field)}")
    return lines


def _field(group: type[_Group] | None, key: str) -> tuple[str, Any]:
    for name, field in (group.model_fields if group else {}).items():
        alias = field.validation_alias
        if name == key or (isinstance(alias, AliasChoices) and key in alias.choices):
            return name, field
    return key, None


def _flag(field: Any) -> str | None:
    """The ``serve`` flag that sets a setting, declared beside it (``json_schema_extra``)."""
    extra = getattr(field, "json_schema_extra", None)
    return str(extra["flag"]) if isinstance(extra, dict) and "flag" in extra else None


def _names(name: str, field: Any) -> list[str]:
    alias = getattr(field, "validation_alias", None)
    return [str(choice) for choice in alias.choices] if isinstance(alias, AliasChoices) else []


def _allowed(error: Any, field: Any) -> str:
    metadata = getattr(field, "metadata", [])
    low = next((m.ge for m in metadata if hasattr(m, "ge")), None)
    high = next((m.le for m in metadata if hasattr(m, "le")), None)
    if low is not None and high is not None:
        whole = "a whole number " if getattr(field, "annotation", None) is int else ""
        return f"must be {whole}between {low} and {high}"
    message = str(error["msg"]).removeprefix("Value error, ")
    if message.startswith("Input should be "):
        return "must be " + message.removeprefix("Input should be ")
    return message
