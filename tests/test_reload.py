"""Live reload of the routing table from a ConfigMap-style directory (``..data`` symlink swaps)."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from sidecar.app import LIVE, METRICS, RELOADER
from sidecar.auth.signing import Algorithm
from sidecar.clock import SystemClock
from sidecar.config import loader, runtime
from sidecar.config.live import LiveConfig
from sidecar.config.reload import Reloader
from sidecar.credentials.sources import Credential
from sidecar.credentials.store import CredentialStore
from tests.builders import local, make_runtime
from tests.conftest import (
    RunningEmulator,
    RunningKube,
    Sidecar,
    StartManagement,
    StartSidecar,
    eventually,
    make_settings,
)

_stamps = itertools.count(1)


class ConfigMapDir:
    """A directory laid out like a mounted ConfigMap, updated the way the kubelet does it:
    write a new timestamped directory, point ``..data_tmp`` at it, rename it over ``..data``.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir()
        (root / "routing.yaml").symlink_to("..data/routing.yaml")

    @property
    def path(self) -> Path:
        return self.root / "routing.yaml"

    def publish(self, text: str) -> None:
        version = self.root / f"..2026_11_28_{next(_stamps):06d}"
        version.mkdir()
        (version / "routing.yaml").write_text(text)
        tmp = self.root / "..data_tmp"
        tmp.symlink_to(version.name)
        tmp.replace(self.root / "..data")  # the atomic swap


def table(*zones: tuple[str, str]) -> str:
    listed = "".join(f"  - {{name: {zone}, account: {account}}}\n" for zone, account in zones)
    return (
        "version: 1\n"
        "accounts:\n  - {name: a, provider: memory}\n  - {name: b, provider: memory}\n"
        f"zones:\n{listed}"
    )


async def start(
    start_sidecar: StartSidecar, configmap: ConfigMapDir, **table_settings: object
) -> Sidecar:
    settings = make_settings(
        table={"config": configmap.path, "reload_debounce_ms": 20, **table_settings}
    )
    return await start_sidecar(settings)


async def serving(sidecar: Sidecar, fqdn_domain: str) -> int:
    reply = await sidecar.caller.call("GET", f"/records/A/{fqdn_domain}/probe")
    return reply.status


@pytest.fixture
def configmap(tmp_path: Path) -> ConfigMapDir:
    return ConfigMapDir(tmp_path / "config")


async def test_several_swaps_each_serve_the_new_table(
    start_sidecar: StartSidecar, configmap: ConfigMapDir
) -> None:
    """Five swaps in a row: after each the new table answers (and the old zones are gone)."""
    configmap.publish(table(("zone0.example", "a")))
    sidecar = await start(start_sidecar, configmap)
    assert await serving(sidecar, "zone0.example") == 404
    for n in range(1, 6):
        configmap.publish(table((f"zone{n}.example", "a" if n % 2 else "b")))
        await eventually(lambda n=n: sidecar.app[LIVE].generation == n + 1)
        assert await serving(sidecar, f"zone{n}.example") == 404  # routed: no record there
        assert await serving(sidecar, f"zone{n - 1}.example") == 403  # DOMAIN_NOT_ALLOWED
    metrics = sidecar.app[METRICS].render().decode()
    assert 'dns_sidecar_config_reloads_total{result="success"} 5.0' in metrics
    assert "dns_sidecar_config_generation 6.0" in metrics


async def test_unchanged_accounts_keep_their_provider_and_records(
    start_sidecar: StartSidecar, configmap: ConfigMapDir
) -> None:
    """An account whose entry is unchanged keeps its provider across a reload (and its data)."""
    configmap.publish(table(("example.com", "a")))
    sidecar = await start(start_sidecar, configmap)
    await sidecar.caller.upsert("A", "example.com", "www", ["192.0.2.1"])
    configmap.publish(table(("example.com", "a"), ("example.org", "b")))
    await eventually(lambda: sidecar.app[LIVE].generation == 2)
    got = await sidecar.caller.call("GET", "/records/A/example.com/www")
    assert got.body["record"]["values"] == ["192.0.2.1"]


async def test_invalid_swap_keeps_the_old_table(
    start_sidecar: StartSidecar, configmap: ConfigMapDir, start_management: StartManagement
) -> None:
    """A broken file never replaces the working table; /status and a metric say why."""
    configmap.publish(table(("example.com", "a")))
    sidecar = await start(start_sidecar, configmap)
    configmap.publish(table(("example.org", "missing-account")))
    live = sidecar.app[LIVE]
    await eventually(lambda: live.failed_reloads == 1)
    assert live.generation == 1
    assert await serving(sidecar, "example.com") == 404  # still the old table
    status = (await (await start_management(sidecar)).call("GET", "/status")).body
    assert (
        "names account 'missing-account', which is not defined"
        in status["config"]["lastReloadError"]
    )
    assert status["config"]["failedReloads"] == 1
    metrics = sidecar.app[METRICS].render().decode()
    assert 'dns_sidecar_config_reloads_total{result="failure"} 1.0' in metrics
    configmap.publish(table(("example.org", "b")))  # fixed: swapped in, error cleared
    await eventually(lambda: live.generation == 2)
    assert live.last_error is None


async def test_unchanged_content_is_not_rebuilt(
    start_sidecar: StartSidecar, configmap: ConfigMapDir
) -> None:
    """The same bytes published again (or a re-check) do not make a new generation."""
    configmap.publish(table(("example.com", "a")))
    sidecar = await start(start_sidecar, configmap)
    reloader = sidecar.app[RELOADER]
    configmap.publish(table(("example.com", "a")))
    assert await reloader.reload_once() is False
    assert sidecar.app[LIVE].generation == 1


async def test_periodic_recheck_catches_a_missed_change(
    start_sidecar: StartSidecar, tmp_path: Path
) -> None:
    """With the watcher blind (a file outside the watched directory), the re-check reloads."""
    real = tmp_path / "elsewhere" / "routing.yaml"
    real.parent.mkdir()
    real.write_text(table(("example.com", "a")))
    watched = tmp_path / "watched"
    watched.mkdir()
    (watched / "routing.yaml").symlink_to(real)
    settings = make_settings(table={"config": watched / "routing.yaml", "reload_interval": 0.05})
    sidecar = await start_sidecar(settings)
    real.write_text(table(("example.org", "a")))  # no event in the watched directory
    await eventually(lambda: sidecar.app[LIVE].generation == 2)
    assert await serving(sidecar, "example.org") == 404


async def test_in_flight_request_finishes_on_its_table(
    start_sidecar: StartSidecar, configmap: ConfigMapDir, cf: RunningEmulator
) -> None:
    """A slow request keeps its provider while a reload removes that provider; then it closes."""
    cf_table = (
        "version: 1\naccounts:\n"
        f"  - {{name: cf, provider: cloudflare, apiToken: {{value: cf-token}}, "
        f"baseUrl: '{cf.base_url}'}}\n"
        "zones:\n  - {name: example.com, account: cf, zoneId: " + "a" * 32 + "}\n"
    )
    configmap.publish(cf_table)
    sidecar = await start(start_sidecar, configmap)
    old_provider = sidecar.app[LIVE].current.accounts["cf"].provider
    cf.emulator.latency = 0.5
    slow = asyncio.ensure_future(sidecar.caller.upsert("A", "example.com", "www", ["192.0.2.1"]))
    await eventually(lambda: cf.total() == 1)  # the request is at the provider
    configmap.publish(table(("example.com", "a")))
    await eventually(lambda: sidecar.app[LIVE].generation == 2)
    reply = await slow
    assert reply.status == 200, reply.body
    assert [r["content"] for r in cf.records("example.com")] == ["192.0.2.1"]
    assert await serving(sidecar, "example.com") == 404  # the new table: memory account a
    # our own API wrapper's SDK clients, closed with the old table
    await eventually(lambda: old_provider.api._clients == {})  # type: ignore[attr-defined]  # noqa: SLF001


async def test_reload_latency(
    start_sidecar: StartSidecar, configmap: ConfigMapDir, capsys: pytest.CaptureFixture[str]
) -> None:
    """Measures swap-on-disk to new routing answering (reported, not asserted: CI is noisy)."""
    configmap.publish(table(("zone0.example", "a")))
    sidecar = await start(start_sidecar, configmap)
    figures = []
    for n in range(1, 6):
        started = time.perf_counter()
        configmap.publish(table((f"zone{n}.example", "a")))

        async def answers(n: int = n) -> bool:
            return await serving(sidecar, f"zone{n}.example") == 404

        await eventually(answers)
        figures.append(time.perf_counter() - started)
    with capsys.disabled():
        print(  # noqa: T201 - the figure is the point of this test
            f"\nreload latency (swap -> new table answering), 5 swaps: "
            f"median {sorted(figures)[2] * 1000:.0f} ms, max {max(figures) * 1000:.0f} ms"
        )


async def test_provider_shared_by_a_pinned_generation_stays_open() -> None:
    """A provider dropped by the newest table stays open while an older pinned table uses it."""
    from sidecar.config.live import LiveConfig  # noqa: PLC0415
    from sidecar.providers.memory import MemoryProvider  # noqa: PLC0415

    closed: list[str] = []

    class Tracked(MemoryProvider):
        def __init__(self, name: str) -> None:
            super().__init__()
            self.name = name

        async def aclose(self) -> None:
            closed.append(self.name)

    shared, first_only = Tracked("shared"), Tracked("first-only")
    live = LiveConfig(make_runtime([shared, first_only]))
    on_first = live.pin()  # a request on generation 1
    old1 = live.swap(make_runtime([shared]))  # generation 2 keeps "shared"
    on_second = live.pin()  # a request on generation 2
    old2 = live.swap(make_runtime([Tracked("new")]))  # generation 3 drops it
    retire1 = asyncio.ensure_future(live.retire(old1))
    retire2 = asyncio.ensure_future(live.retire(old2))
    await asyncio.sleep(0)
    assert closed == []  # both old generations are still pinned
    live.release(on_second)
    await retire2
    assert closed == []  # generation 1 still runs on "shared"
    live.release(on_first)
    await retire1
    assert sorted(closed) == ["first-only", "shared"]


async def test_edited_memory_account_carries_its_records_over(
    start_sidecar: StartSidecar,
    configmap: ConfigMapDir,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Adding file: to a memory account keeps its records, writes them to the file, and logs
    it; the file then brings them back after a restart."""
    caplog.set_level(logging.INFO, logger="sidecar.config.accounts")
    configmap.publish(table(("example.com", "a")))
    sidecar = await start(start_sidecar, configmap)
    await sidecar.caller.upsert("A", "example.com", "www", ["192.0.2.1"])
    await sidecar.caller.upsert("TXT", "example.com", "@", ["hello"])
    snapshot = tmp_path / "a.json"
    configmap.publish(
        table(("example.com", "a")).replace(
            "{name: a, provider: memory}", f"{{name: a, provider: memory, file: {snapshot}}}"
        )
    )
    await eventually(lambda: sidecar.app[LIVE].generation == 2)
    got = await sidecar.caller.call("GET", "/records/A/example.com/www")
    assert got.body["record"]["values"] == ["192.0.2.1"]
    logged = [r.getMessage() for r in caplog.records if r.name == "sidecar.config.accounts"]
    assert logged == [
        f"memory account 'a' changed: carried 2 record set(s) over and wrote them to {snapshot}"
    ]
    restarted = await start(start_sidecar, configmap)
    again = await restarted.caller.call("GET", "/records/TXT/example.com/@")
    assert again.body["record"]["values"] == ["hello"]


async def test_a_file_changing_beside_the_table_causes_no_reload_and_no_log(
    start_sidecar: StartSidecar, configmap: ConfigMapDir, caplog: pytest.LogCaptureFixture
) -> None:
    """A log file written every 10 ms in the table's directory: no reload, no line logged."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="watchfiles")
    configmap.publish(table(("example.com", "a")))
    sidecar = await start(start_sidecar, configmap)
    reloader = sidecar.app[RELOADER]
    reloads: list[bool] = []
    reload_once = reloader.reload_once

    async def counted() -> bool:
        reloads.append(await reload_once())
        return reloads[-1]

    reloader.reload_once = counted  # type: ignore[method-assign]
    noise = configmap.root / "sidecar.log"
    for n in range(50):
        noise.write_text(f"line {n}\n" * n)
        await asyncio.sleep(0.01)  # the pace of the noise, not a synchronisation
    configmap.publish(table(("example.org", "a")))  # the watcher still sees the table's changes
    await eventually(lambda: sidecar.app[LIVE].generation == 2)
    assert reloads == [True]
    assert [r.getMessage() for r in caplog.records if r.name.startswith("watchfiles")] == []


def signed_table(*secrets: str) -> str:
    refs = "".join(f"      - secretRef: {{name: {name}, key: hmac}}\n" for name in secrets)
    return (
        "version: 1\nclients:\n  - name: operator\n    algorithm: SHA512\n    secrets:\n"
        f"{refs}accounts: [{{name: m, provider: memory}}]\n"
        "zones: [{name: example.com, account: m}]\n"
    )


async def test_a_reload_waits_for_the_first_read_of_its_new_secrets(
    kube: RunningKube, start_sidecar: StartSidecar, configmap: ConfigMapDir
) -> None:
    """A reload that adds a secretRef swaps the table in only once that Secret has been read,
    so the first request signed with it is accepted (not 401 while the watch starts)."""
    kube.fake.set_secret("dns-system", "hmac-old", {"hmac": "old"})
    kube.fake.set_secret("dns-system", "hmac-new", {"hmac": "new"})
    configmap.publish(signed_table("hmac-old"))
    settings = make_settings(
        table={"config": configmap.path, "reload_debounce_ms": 20},
        kubernetes={"kubeconfig": kube.kubeconfig},
    )
    sidecar = await start_sidecar(settings, algorithm=Algorithm.SHA512)
    release = kube.fake.hold_list("Secret", "dns-system", "hmac-new")
    configmap.publish(signed_table("hmac-old", "hmac-new"))
    await eventually(lambda: ("Secret", "dns-system", "hmac-new") in kube.fake.waiting)
    live = sidecar.app[LIVE]
    assert live.generation == 1  # the new Secret is not read yet: the old table serves
    assert (await sidecar.caller.call("GET", "/health", secret=b"old")).status == 200
    release.set()
    await eventually(lambda: live.generation == 2)
    assert (await sidecar.caller.call("GET", "/health", secret=b"new")).status == 200


async def test_a_reload_whose_secrets_cannot_be_followed_is_rejected_and_cleaned_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If following the new table's Secrets raises, the old table keeps serving, the reload is
    counted as failed with its reason, and the new table's own providers are closed."""

    class BrokenStore(CredentialStore):
        async def track(
            self, credentials: Iterable[Credential], dns_classes: Iterable[str] = ()
        ) -> None:
            raise RuntimeError("the Kubernetes client cannot be created")

    closed: list[str] = []
    build = runtime.build

    def built_and_watched(*args: Any, **kwargs: Any) -> runtime.Runtime:
        made = build(*args, **kwargs)
        for account in made.accounts.values():

            async def aclose(name: str = account.name) -> None:
                closed.append(name)

            account.provider.aclose = aclose  # type: ignore[method-assign]
        return made

    path = tmp_path / "routing.yaml"
    path.write_text(table(("example.com", "a")))
    settings = make_settings(table={"config": path})
    first = loader.read(path)
    live = LiveConfig(runtime.build(first.spec, settings, source="test", coordination=local()))
    served = live.current
    results: list[str] = []
    reloader = Reloader(
        live,
        path,
        settings,
        BrokenStore(),
        SystemClock(),
        loaded_digest=first.digest,
        on_result=results.append,
        coordination=local(),
    )
    path.write_text(
        table(("example.com", "a"), ("example.org", "c")).replace("{name: b,", "{name: c,")
    )
    monkeypatch.setattr(runtime, "build", built_and_watched)
    assert await reloader.reload_once() is False
    assert (live.current, results, closed) == (served, ["failure"], ["c"])  # a is shared
    assert live.last_error == (
        "cannot follow the Secrets and DNSClasses it names: "
        "RuntimeError('the Kubernetes client cannot be created')"
    )


async def test_reverting_to_the_served_table_clears_the_reload_error(
    start_sidecar: StartSidecar, configmap: ConfigMapDir, caplog: pytest.LogCaptureFixture
) -> None:
    """A broken edit then a revert to the exact content served: the error leaves /status and
    one line says the table on disk is good again."""
    caplog.set_level(logging.INFO, logger="sidecar.config.reload")
    good = table(("example.com", "a"))
    configmap.publish(good)
    sidecar = await start(start_sidecar, configmap)
    live = sidecar.app[LIVE]
    configmap.publish(table(("example.org", "missing-account")))
    await eventually(lambda: live.failed_reloads == 1)
    configmap.publish(good)
    await eventually(lambda: live.last_error is None)
    assert live.generation == 1
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert logged == [
        (
            "the routing table on disk is good again (the one being served); "
            "the last reload error is cleared"
        )
    ]
