"""Settings from the environment: DNS_SIDECAR_* names, the guide's names, and flag overrides."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from sidecar.settings import (
    GROUPS,
    LogFormat,
    ServerSettings,
    Settings,
    describe_settings_error,
    reference_table,
)
from tests import settings_table


def test_defaults() -> None:
    """Safe defaults: loopback, 7100/8080, 64 KiB bodies, ±300 s, 100 000 nonces."""
    settings = Settings.from_env()
    assert (settings.server.host, settings.server.port, settings.server.management_port) == (
        "127.0.0.1",
        7100,
        8080,
    )
    assert settings.server.max_body_bytes == 65536
    assert (settings.auth.timestamp_skew, settings.auth.replay_cache_size) == (300.0, 100_000)
    assert settings.auth.hmac_secret is None
    assert settings.table.config is None


def test_guide_names_and_prefixed_names(monkeypatch: pytest.MonkeyPatch) -> None:
    """PORT, HMAC_SECRET and HMAC_ALGORITHM work; DNS_SIDECAR_* wins when both are set."""
    monkeypatch.setenv("PORT", "9000")
    monkeypatch.setenv("HMAC_SECRET", "guide")
    monkeypatch.setenv("HMAC_ALGORITHM", "SHA512")
    monkeypatch.setenv("DNS_SIDECAR_LOG_FORMAT", "json")
    monkeypatch.setenv("DNS_SIDECAR_CONFIG", "/etc/dns-sidecar/routing.yaml")
    settings = Settings.from_env()
    assert settings.server.port == 9000
    assert settings.auth.hmac_secret is not None
    assert settings.auth.hmac_secret.get_secret_value() == "guide"
    assert settings.auth.hmac_algorithm == "SHA512"
    assert settings.log.format is LogFormat.JSON
    assert str(settings.table.config) == "/etc/dns-sidecar/routing.yaml"
    monkeypatch.setenv("DNS_SIDECAR_PORT", "9100")
    monkeypatch.setenv("DNS_SIDECAR_HMAC_SECRET", "prefixed")
    settings = Settings.from_env()
    assert settings.server.port == 9100
    assert settings.auth.hmac_secret is not None
    assert settings.auth.hmac_secret.get_secret_value() == "prefixed"


def test_flags_override_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the command line says wins over the environment; unset flags leave it alone."""
    monkeypatch.setenv("DNS_SIDECAR_PORT", "9100")
    monkeypatch.setenv("DNS_SIDECAR_HOST", "0.0.0.0")  # noqa: S104
    settings = Settings.from_env(server={"port": 7200, "host": None})
    assert (settings.server.port, settings.server.host) == (7200, "0.0.0.0")  # noqa: S104


def test_empty_variables_are_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    """HMAC_SECRET= (empty) means no secret, not an empty one."""
    monkeypatch.setenv("HMAC_SECRET", "")
    assert Settings.from_env().auth.hmac_secret is None


def test_secret_is_not_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    """Secrets stay out of reprs (and so out of logs)."""
    monkeypatch.setenv("HMAC_SECRET", "hunter2")
    assert "hunter2" not in repr(Settings.from_env())


def test_every_setting_is_documented_where_declared() -> None:
    """Each setting carries a description, and each variable name is unique across groups."""
    fields = [field for group in GROUPS for field in group.model_fields.values()]
    undocumented = [field.validation_alias for field in fields if not field.description]
    assert undocumented == []
    names = [str(field.validation_alias.choices[0]) for field in fields]  # type: ignore[union-attr]
    assert len(names) == len(set(names))


def test_docs_settings_table_is_generated_from_the_declarations() -> None:
    """docs/configuration.md's table is exactly what the declarations render (run make
    settings-table)."""
    page = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"
    assert settings_table.current(page.read_text(encoding="utf-8")) == reference_table()


def test_settings_error_names_the_flag_declared_beside_the_setting() -> None:
    """A bad port names its variables and its serve flag, from the declaration itself."""
    with pytest.raises(ValidationError) as caught:
        ServerSettings(port=99999)
    assert describe_settings_error(caught.value) == [
        (
            "invalid setting port (DNS_SIDECAR_PORT, PORT, --port): 99999: "
            "must be a whole number between 0 and 65535"
        )
    ]


def test_kubernetes_watch_and_in_cluster_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Watch timings come from DNS_SIDECAR_WATCH_*; KUBERNETES_SERVICE_HOST means in-cluster."""
    assert Settings.from_env().watch.model_dump() == {
        "list_timeout": 10.0,
        "watch_seconds": 290,
        "backoff_initial": 0.5,
        "backoff_max": 30.0,
    }
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert Settings.from_env().kubernetes.in_cluster is False
    monkeypatch.setenv("DNS_SIDECAR_WATCH_LIST_TIMEOUT", "3")
    monkeypatch.setenv("DNS_SIDECAR_WATCH_SECONDS", "60")
    monkeypatch.setenv("DNS_SIDECAR_WATCH_BACKOFF_INITIAL", "0.1")
    monkeypatch.setenv("DNS_SIDECAR_WATCH_BACKOFF_MAX", "5")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    settings = Settings.from_env()
    assert settings.watch.model_dump() == {
        "list_timeout": 3.0,
        "watch_seconds": 60,
        "backoff_initial": 0.1,
        "backoff_max": 5.0,
    }
    assert settings.kubernetes.in_cluster is True


def test_sweep_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sweeps every 300 s with a 600 s grace by default; 0 turns them off, any second from 1
    is taken (tests sweep in seconds), and a fraction below 1 is refused saying why."""
    assert (Settings.from_env().sweeps.interval, Settings.from_env().sweeps.orphan_grace) == (
        300.0,
        600.0,
    )
    monkeypatch.setenv("DNS_SIDECAR_SWEEP_INTERVAL", "0")
    monkeypatch.setenv("DNS_SIDECAR_ORPHAN_GRACE", "1")
    assert (Settings.from_env().sweeps.interval, Settings.from_env().sweeps.orphan_grace) == (
        0.0,
        1.0,
    )
    monkeypatch.setenv("DNS_SIDECAR_SWEEP_INTERVAL", "0.5")
    with pytest.raises(ValidationError) as refused:
        Settings.from_env()
    assert describe_settings_error(refused.value) == [
        (
            "invalid setting interval (DNS_SIDECAR_SWEEP_INTERVAL): '0.5': must be 0 (sweeps off) "
            "or at least 1 second"
        )
    ]
