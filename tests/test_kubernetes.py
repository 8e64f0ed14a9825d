"""Credentials and HMAC settings from Kubernetes: the real kubernetes_asyncio client against a fake
API server on loopback (list, watch, 410 after compaction, bookmarks, dropped connections, 403).
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest

from sidecar.app import LIVE, METRICS, STORE
from sidecar.auth.signing import Algorithm
from sidecar.credentials.kubernetes import KubernetesObjects
from sidecar.credentials.sources import CredentialUnavailable, FromSecret, SecretKeyRef
from sidecar.credentials.store import CredentialStore
from sidecar.credentials.watch import ObjectWatch
from sidecar.settings import WatchSettings
from tests.conftest import (
    RunningEmulator,
    RunningKube,
    Sidecar,
    StartManagement,
    StartSidecar,
    eventually,
    make_settings,
)

NS = "dns-system"


async def start(
    start_sidecar: StartSidecar, kube: RunningKube, tmp_path: Path, table: str, **kw: Any
) -> Sidecar:
    path = tmp_path / "routing.yaml"
    path.write_text(table)
    settings = make_settings(table={"config": path}, kubernetes={"kubeconfig": kube.kubeconfig})
    return await start_sidecar(settings, **kw)


def secret_watch(sidecar: Sidecar, namespace: str, name: str) -> ObjectWatch:
    objects = sidecar.app[STORE].kubernetes
    assert objects is not None
    watch = objects.secret(namespace, name)
    assert watch is not None
    return watch


def dns_class_watch(sidecar: Sidecar, name: str) -> ObjectWatch:
    objects = sidecar.app[STORE].kubernetes
    assert objects is not None
    watch = objects.dns_class(name)
    assert watch is not None
    return watch


def changes(sidecar: Sidecar, kind: str) -> float:
    """Changes seen to the watched objects of ``kind``, as the metric counts them."""
    text = sidecar.app[METRICS].render().decode()
    pattern = rf'^dns_sidecar_kubernetes_object_changes_total{{kind="{kind}"}} (\S+)$'
    found = re.search(pattern, text, flags=re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def cloudflare_table(cf: RunningEmulator, extra_zone: str = "") -> str:
    return f"""
version: 1
accounts:
  - name: personal
    provider: cloudflare
    apiToken: {{secretRef: {{name: cf-personal, key: api-token}}}}
    baseUrl: {cf.base_url}
  - name: other
    provider: cloudflare
    apiToken: {{secretRef: {{namespace: elsewhere, name: cf-missing, key: api-token}}}}
    baseUrl: {cf.base_url}
  - name: scratch
    provider: memory
zones:
  - {{name: example.com, account: personal}}
  - {{name: example.org, account: other}}
  - {{name: lab.example, account: scratch}}
{extra_zone}"""


async def test_rotated_token_reaches_the_provider(
    kube: RunningKube, start_sidecar: StartSidecar, cf: RunningEmulator, tmp_path: Path
) -> None:
    """The API token comes from a Secret; a rotation is used on the next request, no restart."""
    kube.fake.set_secret(NS, "cf-personal", {"api-token": "cf-token"})
    sidecar = await start(start_sidecar, kube, tmp_path, cloudflare_table(cf))
    caller = sidecar.caller
    assert (await caller.upsert("A", "example.com", "www", ["192.0.2.1"])).status == 200
    cf.emulator.tokens.clear()
    cf.emulator.add_token("rotated-token")
    kube.fake.set_secret(NS, "cf-personal", {"api-token": "rotated-token"})
    await eventually(lambda: changes(sidecar, "Secret") == 2)
    assert (await caller.upsert("A", "example.com", "www", ["192.0.2.2"])).status == 200
    assert [r["content"] for r in cf.records("example.com")] == ["192.0.2.2"]
    metrics = sidecar.app[METRICS].render().decode()
    assert 'dns_sidecar_kubernetes_object_changes_total{kind="Secret"} 2.0' in metrics


async def test_missing_secret_fails_only_its_account(
    kube: RunningKube, start_sidecar: StartSidecar, cf: RunningEmulator, tmp_path: Path
) -> None:
    """A missing Secret makes its account PROVIDER_UNAVAILABLE naming it; others keep working."""
    kube.fake.set_secret(NS, "cf-personal", {"api-token": "cf-token"})
    caller = (await start(start_sidecar, kube, tmp_path, cloudflare_table(cf))).caller
    missing = await caller.upsert("A", "example.org", "www", ["192.0.2.1"])
    assert (missing.status, missing.code) == (503, "PROVIDER_UNAVAILABLE")
    assert missing.message == (
        "Account 'other': Secret elsewhere/cf-missing key api-token: the Secret does not exist."
    )
    assert (await caller.upsert("A", "example.com", "www", ["192.0.2.1"])).status == 200
    assert (await caller.upsert("A", "lab.example", "www", ["192.0.2.1"])).status == 200
    kube.fake.set_secret(NS, "cf-personal", {"wrong-key": "x"})
    await eventually(lambda: "wrong-key" in str(kube.fake.objects))
    reply = None

    async def refused() -> bool:
        nonlocal reply
        reply = await caller.upsert("A", "example.com", "www", ["192.0.2.3"])
        return reply.status == 503

    await eventually(refused)
    assert reply is not None
    assert reply.message == (
        "Account 'personal': Secret dns-system/cf-personal key api-token: the Secret has no "
        "such key (keys: wrong-key)."
    )


def hmac_table(extra: str = "") -> str:
    return f"""
version: 1
clients:
  - name: operator
    algorithm: SHA512
    secrets:
      - secretRef: {{name: hmac, key: current}}
      - secretRef: {{name: hmac, key: previous}}
{extra}
accounts: [{{name: m, provider: memory}}]
zones: [{{name: example.com, account: m}}]
"""


async def test_rotated_hmac_secret_is_enforced(
    kube: RunningKube, start_sidecar: StartSidecar, tmp_path: Path
) -> None:
    """HMAC secrets from a Secret: after rotation the new one verifies and a dropped one fails."""
    kube.fake.set_secret(NS, "hmac", {"current": "one", "previous": "zero"})
    sidecar = await start(start_sidecar, kube, tmp_path, hmac_table(), algorithm=Algorithm.SHA512)
    caller = sidecar.caller
    assert (await caller.call("GET", "/health", secret=b"one")).status == 200
    assert (await caller.call("GET", "/health", secret=b"zero")).status == 200
    kube.fake.set_secret(NS, "hmac", {"current": "two", "previous": "one"})
    await eventually(lambda: changes(sidecar, "Secret") == 2)
    assert (await caller.call("GET", "/health", secret=b"two")).status == 200
    assert (await caller.call("GET", "/health", secret=b"one")).status == 200
    refused = await caller.call("GET", "/health", secret=b"zero")
    assert (refused.status, refused.code) == (401, "AUTH_FAILED")


async def test_watch_survives_compaction_bookmarks_and_drops(
    kube: RunningKube,
    start_sidecar: StartSidecar,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """410 Gone makes it list again; bookmarks only move the version; a drop reconnects."""
    monkeypatch.setenv("DNS_SIDECAR_WATCH_BACKOFF_INITIAL", "0.05")  # each end waits a backoff
    kube.fake.set_secret(NS, "hmac", {"current": "one", "previous": "zero"})
    sidecar = await start(start_sidecar, kube, tmp_path, hmac_table(), algorithm=Algorithm.SHA512)
    watch = secret_watch(sidecar, NS, "hmac")
    await eventually(lambda: list(kube.fake.open_watches()) == [("Secret", NS, "hmac")])
    lists = kube.fake.lists

    kube.fake.bookmark()
    await eventually(lambda: watch.resource_version == str(kube.fake.version))
    assert changes(sidecar, "Secret") == 1  # a bookmark is not a change

    kube.fake.compact()
    kube.fake.expire_watches()  # 410 as an ERROR event
    await eventually(lambda: kube.fake.lists > lists)
    kube.fake.set_secret(NS, "hmac", {"current": "two", "previous": "one"})
    await eventually(lambda: changes(sidecar, "Secret") == 2)

    watches = kube.fake.watches
    kube.fake.drop_watches()
    await eventually(lambda: kube.fake.watches > watches and any(kube.fake.open_watches()))
    kube.fake.set_secret(NS, "hmac", {"current": "three", "previous": "two"})
    await eventually(lambda: changes(sidecar, "Secret") == 3)
    caller = sidecar.caller
    assert (await caller.call("GET", "/health", secret=b"three")).status == 200

    lists = kube.fake.lists
    kube.fake.drop_watches()
    kube.fake.set_secret(NS, "unrelated", {"x": "y"})
    kube.fake.compact()  # the version it reconnects from is gone by the time it does
    await eventually(
        lambda: (
            kube.fake.lists > lists
            and watch.error is None
            and watch.resource_version == str(kube.fake.version)
        )
    )
    assert changes(sidecar, "Secret") == 3  # a re-list of the same content is not a change
    assert kube.fake.unselected == 0  # every request named its object


async def test_reading_an_object_starts_no_watch(
    kube: RunningKube, start_sidecar: StartSidecar, tmp_path: Path
) -> None:
    """Only applying a table starts watches: reading an object nobody follows (as /status may)
    finds nothing, says so, and starts nothing."""
    kube.fake.set_secret(NS, "hmac", {"current": "one", "previous": "zero"})
    kube.fake.set_secret(NS, "other", {"current": "x"})
    sidecar = await start(start_sidecar, kube, tmp_path, hmac_table(), algorithm=Algorithm.SHA512)
    store = sidecar.app[STORE]
    objects = store.kubernetes
    assert objects is not None
    other = FromSecret(secretRef=SecretKeyRef(namespace=NS, name="other", key="current"))
    for _ in range(2):  # the first read must not have started a watch for the second to find
        assert (objects.secret(NS, "other"), objects.dns_class("other")) == (None, None)
        with pytest.raises(CredentialUnavailable) as refused:
            store.read(other)
        assert refused.value.message == "Secret dns-system/other key current: not watched yet."
    assert objects.secret(NS, "hmac") is not None


async def test_forbidden_secret_is_explained(
    kube: RunningKube,
    start_sidecar: StartSidecar,
    tmp_path: Path,
    start_management: StartManagement,
) -> None:
    """A Secret the Role does not grant is refused with the API's reason, not a hang."""
    kube.fake.forbidden.add(("Secret", NS, "hmac"))
    sidecar = await start(start_sidecar, kube, tmp_path, hmac_table(), algorithm=Algorithm.SHA512)
    reply = await sidecar.caller.call("GET", "/health", secret=b"one")
    assert (reply.status, reply.code) == (401, "AUTH_FAILED")
    assert "the API server forbids reading Secret dns-system/hmac" in reply.message
    status = (await (await start_management(sidecar)).call("GET", "/status")).body
    assert "forbids reading" in status["clients"][0]["refused"]


def dns_class_table() -> str:
    return """
version: 1
clients:
  - {name: cloudflare, dnsClass: cloudflare}
  - {name: home, dnsClass: home, zones: [home.example]}
accounts: [{name: m, provider: memory}]
zones: [{name: example.com, account: m}, {name: home.example, account: m}]
"""


def hmac_auth(algorithm: str, secret: str, key: str = "hmac-secret") -> dict[str, Any]:
    return {
        "server": "http://dns-sidecar.dns-system.svc:7100",
        "hmacAuth": {
            "algorithm": algorithm,
            "secretRef": {"name": secret, "namespace": NS, "key": key},
        },
    }


async def test_dns_class_settings_follow_the_dns_class(
    kube: RunningKube,
    start_sidecar: StartSidecar,
    tmp_path: Path,
    start_management: StartManagement,
) -> None:
    """Algorithm switched on the DNSClass, secretRef moved, DNSClass deleted: no restart."""
    kube.fake.set_secret(NS, "cf-hmac", {"hmac-secret": "cf-secret"})
    kube.fake.set_secret(NS, "home-hmac", {"hmac-secret": "home-secret"})
    kube.fake.set_secret(NS, "cf-hmac-2", {"hmac-secret": "cf-secret-2"})
    kube.fake.set_dns_class("cloudflare", hmac_auth("SHA256", "cf-hmac"))
    kube.fake.set_dns_class("home", hmac_auth("SHA512", "home-hmac"))
    sidecar = await start(start_sidecar, kube, tmp_path, dns_class_table())
    caller = sidecar.caller
    cf256 = {"secret": b"cf-secret", "algorithm": Algorithm.SHA256}
    cf512 = {"secret": b"cf-secret", "algorithm": Algorithm.SHA512}
    home = {"secret": b"home-secret", "algorithm": Algorithm.SHA512}

    # two clients from two DNSClasses at once, each with its own algorithm
    assert (await caller.upsert("A", "example.com", "www", ["192.0.2.1"], **cf256)).status == 200
    assert (await caller.upsert("A", "home.example", "nas", ["192.0.2.2"], **home)).status == 200
    assert (await caller.upsert("A", "example.com", "x", ["192.0.2.2"], **home)).code == (
        "DOMAIN_NOT_ALLOWED"
    )

    # algorithm switched from SHA256 to SHA512 on the DNSClass
    kube.fake.set_dns_class("cloudflare", hmac_auth("SHA512", "cf-hmac"))
    dns_class = dns_class_watch(sidecar, "cloudflare")
    await eventually(lambda: changes(sidecar, "DNSClass") == 3)  # both DNSClasses read, then this
    assert (await caller.call("GET", "/health", **cf512)).status == 200
    assert (await caller.call("GET", "/health", **cf256)).code == "AUTH_FAILED"

    # secretRef pointed at another Secret
    kube.fake.set_dns_class("cloudflare", hmac_auth("SHA512", "cf-hmac-2"))
    await eventually(lambda: changes(sidecar, "DNSClass") == 4)

    async def new_secret_enforced() -> bool:
        reply = await caller.call(
            "GET", "/health", secret=b"cf-secret-2", algorithm=Algorithm.SHA512
        )
        return reply.status == 200

    await eventually(new_secret_enforced)
    assert (await caller.call("GET", "/health", **cf512)).code == "AUTH_FAILED"

    status = (await (await start_management(sidecar)).call("GET", "/status")).body
    assert status["clients"][0] == {
        "name": "cloudflare",
        "source": "DNSClass cloudflare",
        "algorithm": "SHA512",
        "signed": True,
        "secrets": 1,
        "zones": "all",
        "refused": None,
        "server": "http://dns-sidecar.dns-system.svc:7100",
    }
    watches = {name: loop["running"] for name, loop in status["loops"].items()}
    assert watches == {  # every watch is a supervised loop on /status, beside the reload's
        "recheck_forever": True,
        "watch_forever": True,
        "watch DNSClass cloudflare": True,
        "watch DNSClass home": True,
        f"watch Secret {NS}/cf-hmac-2": True,
        f"watch Secret {NS}/home-hmac": True,
        "watch DNSRecords in all namespaces": True,  # a dnsClass client reads DNSRecords
        "sweeps": True,  # and they are swept
    }

    # DNSClass deleted: that client is refused with a clear message; the other still works
    kube.fake.delete("DNSClass", "", "cloudflare")
    await eventually(lambda: dns_class.object is None)
    gone = await caller.call("GET", "/health", secret=b"cf-secret-2", algorithm=Algorithm.SHA512)
    assert (gone.status, gone.code) == (401, "AUTH_FAILED")
    assert "client 'cloudflare': DNSClass cloudflare does not exist" in gone.message
    assert (await caller.call("GET", "/health", **home)).status == 200
    metrics = sidecar.app[METRICS].render().decode()
    assert 'dns_sidecar_kubernetes_object_changes_total{kind="DNSClass"} 5.0' in metrics


async def test_dns_class_without_hmac_means_unsigned(
    kube: RunningKube, start_sidecar: StartSidecar, tmp_path: Path
) -> None:
    """A DNSClass without hmacAuth lets its client send unsigned requests (on loopback)."""
    kube.fake.set_dns_class("cloudflare", {"server": "http://127.0.0.1:7100"})
    kube.fake.set_dns_class("home", hmac_auth("SHA512", "home-hmac"))
    sidecar = await start(start_sidecar, kube, tmp_path, dns_class_table())
    reply = await sidecar.caller.call("GET", "/health", sign=False)
    assert reply.status == 200
    assert sidecar.app[LIVE].current.clients[0].source == "DNSClass cloudflare"


@pytest.mark.parametrize("listen", ["0.0.0.0"])  # noqa: S104 - the point of the test
async def test_unsigned_dns_class_refused_off_loopback(
    kube: RunningKube, start_sidecar: StartSidecar, tmp_path: Path, listen: str
) -> None:
    """Off loopback, a DNSClass without hmacAuth does not open the door to unsigned requests."""
    kube.fake.set_dns_class("cloudflare", {"server": "http://x"})
    kube.fake.set_dns_class("home", hmac_auth("SHA512", "home-hmac"))
    path = tmp_path / "routing.yaml"
    path.write_text(dns_class_table())
    settings = make_settings(
        table={"config": path},
        kubernetes={"kubeconfig": kube.kubeconfig},
        server={"host": listen},
    )
    sidecar = await start_sidecar(settings)
    reply = await sidecar.caller.call("GET", "/health", sign=False)
    assert (reply.status, reply.code) == (401, "AUTH_FAILED")
    assert "client 'cloudflare' has no HMAC secret" in reply.message


async def test_fake_api_forbids_unselected_lists_like_a_resource_names_role(
    kube: RunningKube,
) -> None:
    """The fake answers 403 to a list without fieldSelector, as RBAC with resourceNames does;
    the watcher above never sends one (``unselected`` stays 0)."""
    from kubernetes_asyncio import client, config  # noqa: PLC0415 - test-only use

    configuration = client.Configuration()
    await config.load_kube_config(
        config_file=str(kube.kubeconfig), client_configuration=configuration
    )
    async with client.ApiClient(configuration) as api:
        with pytest.raises(client.ApiException) as caught:
            await client.CoreV1Api(api).list_namespaced_secret(NS)
    assert caught.value.status == 403
    assert kube.fake.unselected == 1


async def test_inline_dns_class_secret_wins_over_secret_ref(
    kube: RunningKube,
    start_sidecar: StartSidecar,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """spec.hmacAuth.secret is what the operator signs with, beside a secretRef: it verifies, the
    Secret's value does not, and one warning says an inline secret is for testing only."""
    kube.fake.set_secret(NS, "cf-hmac", {"hmac-secret": "from-secret"})
    inline = hmac_auth("SHA512", "cf-hmac")
    inline["hmacAuth"]["secret"] = " inline secret "  # the operator signs these bytes as they are
    kube.fake.set_dns_class("cloudflare", inline)
    kube.fake.set_dns_class("home", hmac_auth("SHA512", "home-hmac"))
    sidecar = await start(start_sidecar, kube, tmp_path, dns_class_table())
    caller = sidecar.caller
    signed = {"algorithm": Algorithm.SHA512}
    assert (await caller.call("GET", "/health", secret=b" inline secret ", **signed)).status == 200
    stripped = await caller.call("GET", "/health", secret=b"inline secret", **signed)
    from_ref = await caller.call("GET", "/health", secret=b"from-secret", **signed)
    assert [(r.status, r.code) for r in (stripped, from_ref)] == [(401, "AUTH_FAILED")] * 2
    warnings = [r.getMessage() for r in caplog.records if "inline secret" in r.getMessage()]
    assert warnings == [
        (
            "DNSClass cloudflare signs with spec.hmacAuth.secret, an inline secret that the CRD "
            "calls for testing only (anyone who can read the DNSClass can sign); it wins over "
            "secretRef. Use secretRef in production."
        )
    ]


async def test_empty_inline_dns_class_secret_means_unsigned(
    kube: RunningKube, start_sidecar: StartSidecar, tmp_path: Path
) -> None:
    """spec.hmacAuth.secret "" makes the operator send unsigned requests (its secret is empty),
    whatever secretRef says: the sidecar reads it the same way, on loopback."""
    empty = hmac_auth("SHA256", "cf-hmac")
    empty["hmacAuth"]["secret"] = ""
    kube.fake.set_dns_class("cloudflare", empty)
    kube.fake.set_dns_class("home", hmac_auth("SHA512", "home-hmac"))
    sidecar = await start(start_sidecar, kube, tmp_path, dns_class_table())
    reply = await sidecar.caller.call("GET", "/health", sign=False)
    assert reply.status == 200


async def test_dns_class_hmac_auth_without_a_secret_is_refused(
    kube: RunningKube, start_sidecar: StartSidecar, tmp_path: Path
) -> None:
    """hmacAuth with neither secret nor secretRef: that client's requests are refused, saying so
    (not let through unsigned, and not blamed on the signature's length)."""
    no_secret = {"server": "http://x", "hmacAuth": {"algorithm": "SHA256"}}
    kube.fake.set_dns_class("cloudflare", no_secret)
    kube.fake.set_dns_class("home", hmac_auth("SHA512", "home-hmac"))
    sidecar = await start(start_sidecar, kube, tmp_path, dns_class_table())
    for sign in (True, False):
        reply = await sidecar.caller.call("GET", "/health", sign=sign, secret=b"anything")
        assert (reply.status, reply.code, reply.message) == (
            401,
            "AUTH_FAILED",
            (
                "The request cannot be authenticated: client 'cloudflare': DNSClass cloudflare: "
                "spec.hmacAuth has neither secret nor secretRef, so there is no secret to verify "
                "with (the operator refuses to send requests for it too); client 'home': "
                "DNSClass home: Secret dns-system/home-hmac key hmac-secret: the Secret does not "
                "exist."
            ),
        )


async def test_secret_with_a_trailing_newline_verifies_as_the_operator_signs(
    kube: RunningKube,
    start_sidecar: StartSidecar,
    start_management: StartManagement,
    tmp_path: Path,
) -> None:
    """The operator signs with a Secret's bytes as stored, a trailing newline included (a Secret
    made with --from-file): that verifies, and so does the value without it; /status counts it
    as the one secret it is."""
    kube.fake.set_secret(NS, "cf-hmac", {"hmac-secret": "cf-secret\n"})
    kube.fake.set_dns_class("cloudflare", hmac_auth("SHA256", "cf-hmac"))
    kube.fake.set_dns_class("home", hmac_auth("SHA512", "home-hmac"))
    sidecar = await start(start_sidecar, kube, tmp_path, dns_class_table())
    as_operator = await sidecar.caller.call("GET", "/health", secret=b"cf-secret\n")
    stripped = await sidecar.caller.call("GET", "/health", secret=b"cf-secret")
    assert (as_operator.status, stripped.status) == (200, 200)
    status = (await (await start_management(sidecar)).call("GET", "/status")).body
    secrets = {client["name"]: client["secrets"] for client in status["clients"]}
    assert secrets["cloudflare"] == 1


async def three_watches(kube: RunningKube, *, watch_seconds: int) -> tuple[float, Any]:
    """Follow Secret hmac (backoff starting at 0.2 s) until the server has seen three watches:
    the seconds that took, and the Secret as the watch then holds it."""
    settings = WatchSettings.model_construct(
        watch_seconds=watch_seconds, backoff_initial=0.2, backoff_max=30
    )
    objects = KubernetesObjects(kubeconfig=kube.kubeconfig, namespace=NS, settings=settings)
    await objects.start()
    loop = asyncio.get_running_loop()
    try:
        started = loop.time()
        objects.watch_secret(NS, "hmac")
        await eventually(lambda: kube.fake.watches >= 3)
        took = loop.time() - started
        watch = objects.secret(NS, "hmac")
        return took, watch.object if watch is not None else None
    finally:
        await objects.stop()


async def test_a_watch_the_server_ends_cleanly_is_reopened_with_backoff(kube: RunningKube) -> None:
    """A server that ends every watch at once is not hammered: each reopening waits longer."""
    kube.fake.set_secret(NS, "hmac", {"current": "one"})
    took, _ = await three_watches(kube, watch_seconds=0)  # the server ends each one at once
    # two waits before the third watch: 0.2 s and 0.4 s, each with jitter of at most -20 %
    assert (kube.fake.watches, took >= 0.48) == (3, True)


async def test_a_watch_the_server_expires_at_once_is_listed_again_with_backoff(
    kube: RunningKube,
) -> None:
    """A server answering 410 Gone to every watch is not hammered: each re-list waits longer."""
    kube.fake.set_secret(NS, "hmac", {"current": "one"})
    kube.fake.compacted_below = 10**9  # every watch is from a version already compacted away
    took, current = await three_watches(kube, watch_seconds=60)
    # two waits before the third watch: 0.2 s and 0.4 s, each with jitter of at most -20 %;
    # each Gone lists again, and the Secret stays known meanwhile
    assert (kube.fake.watches, kube.fake.lists, took >= 0.48) == (3, 3, True)
    assert current == kube.fake.objects[("Secret", NS, "hmac")]


async def test_each_watch_shows_as_a_loop_down_while_it_fails(kube: RunningKube) -> None:
    """The store shows each watch as a supervised loop: down with its error while the API server
    refuses it, running once it answers, gone once the object is no longer followed."""
    kube.fake.forbidden.add(("Secret", NS, "hmac"))
    settings = WatchSettings.model_construct(watch_seconds=60, backoff_initial=0.05, backoff_max=30)
    store = CredentialStore(
        lambda: KubernetesObjects(kubeconfig=kube.kubeconfig, namespace=NS, settings=settings)
    )
    name = f"watch Secret {NS}/hmac"
    before = store.loops()
    await store.start()
    try:
        await store.track([FromSecret(secretRef=SecretKeyRef(name="hmac", key="current"))])
        await eventually(lambda: store.loops()[name]["running"] is False)
        down = store.loops()
        kube.fake.forbidden.clear()
        kube.fake.set_secret(NS, "hmac", {"current": "one"})
        await eventually(lambda: store.loops()[name]["running"] is True)
        up = store.loops()
        await store.track([])
        gone = store.loops()
    finally:
        await store.stop()
    refused = (
        f'the API server forbids reading Secret {NS}/hmac (secrets "hmac" is forbidden); the '
        "Role needs get, list and watch on it (resourceNames may name it)"
    )
    assert [before, down, up, gone] == [
        {},
        {name: {"running": False, "restarts": 0, "lastError": refused}},
        {name: {"running": True, "restarts": 0, "lastError": None}},
        {},
    ]
